"""Signing up and signing in: attempts are throttled and passwords checked here, never in a
route."""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import TTLCache
from pymongo.errors import DuplicateKeyError

from ticketing_auth import repository
from ticketing_auth.errors import EmailInUseError, InvalidCredentialsError
from ticketing_auth.passwords import Passwords
from ticketing_auth.repository import UserDoc
from ticketing_auth.throttle import Throttle
from ticketing_common.auth import UserClaims
from ticketing_common.mongo import Database
from ticketing_common.outbox import Outbox


@dataclass(frozen=True)
class Credentials:
    """What a sign-up or sign-in offers, and the address it comes from (for the limits)."""

    email: str
    password: str
    address: str


async def sign_up(
    outbox: Outbox, passwords: Passwords, throttle: Throttle, credentials: Credentials
) -> UserDoc:
    """A new account (user:created is published with it); EmailInUseError, or
    TooManyAttemptsError before any hashing when the address or the email has tried too
    often."""
    email = credentials.email
    await throttle.attempt("signup", address=credentials.address, email=email)
    password_hash = await passwords.hash(credentials.password)
    try:
        user = await repository.create_user(outbox, email=email, password_hash=password_hash)
    except DuplicateKeyError:
        # The unique index decides: of two concurrent sign-ups of one email exactly one wins.
        raise EmailInUseError() from None
    await throttle.succeeded("signup", address=credentials.address, email=email)
    return user


async def sign_in(
    db: Database, passwords: Passwords, throttle: Throttle, credentials: Credentials
) -> UserDoc:
    """The account these credentials open; TooManyAttemptsError (before any database read or
    hashing, so the same for a known and an unknown email) when the address, the email at this
    address, or the email from everywhere has failed too often (see `throttle`)."""
    email = credentials.email
    await throttle.attempt("signin", address=credentials.address, email=email)
    user = await repository.get_user_by_email(db, email=email)
    # Verified even for an unknown email (against a dummy hash): the same time either way.
    ok = await passwords.verify(credentials.password, repository.password_hash_of(user))
    if user is None or not ok:
        # Already counted as a failure (every attempt is, until it succeeds).
        raise InvalidCredentialsError()
    await throttle.succeeded("signin", address=credentials.address, email=email)
    return user


# Accounts a valid session was found to belong to, for a few seconds: currentuser is asked on
# every page, and its one read was most of its cost. An account deleted meanwhile (deletion is
# not a feature yet; whatever deletes one calls `forget`) signs its sessions out within this
# long on other replicas; the other services accept the token until it expires anyway.
ACCOUNT_CHECK_SECONDS = 5.0
_accounts: TTLCache[tuple[str, str], UserDoc] = TTLCache(maxsize=10_000, ttl=ACCOUNT_CHECK_SECONDS)


async def signed_in_user(db: Database, claims: UserClaims | None) -> UserDoc | None:
    """The account of a valid session, if it still exists.

    Every service trusts a valid session token on its own until it expires (they never call
    auth); only here, where the accounts are, does a token whose account is gone sign nobody
    in, and the web client asks this on every page.
    """
    if claims is None:
        return None
    key = (db.name, claims.id)
    user = _accounts.get(key)
    if user is None:
        user = await repository.get_user(db, user_id=claims.id)
        if user is not None:
            _accounts[key] = user
    return user


def forget(db: Database, *, user_id: str) -> None:
    """An account is gone (or changed): sessions stop finding it here at once."""
    _accounts.pop((db.name, user_id), None)
