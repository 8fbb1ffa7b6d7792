"""Signing up and signing in: passwords are checked here, never in a route."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from ticketing_auth import repository
from ticketing_auth.passwords import Passwords
from ticketing_auth.repository import UserDoc
from ticketing_common.mongo import Database
from ticketing_common.outbox import Outbox


class EmailInUseError(ValueError):
    """Someone already signed up with this email."""


class InvalidCredentialsError(ValueError):
    """Unknown email or wrong password: deliberately one error, answered in the same time."""


async def sign_up(outbox: Outbox, passwords: Passwords, *, email: str, password: str) -> UserDoc:
    """A new account (user:created is published with it)."""
    password_hash = await passwords.hash(password)
    try:
        return await repository.create_user(outbox, email=email, password_hash=password_hash)
    except DuplicateKeyError:
        # The unique index decides: of two concurrent sign-ups of one email exactly one wins.
        raise EmailInUseError(email) from None


async def sign_in(db: Database, passwords: Passwords, *, email: str, password: str) -> UserDoc:
    """The account these credentials open."""
    user = await repository.get_user_by_email(db, email=email)
    # Verified even for an unknown email (against a dummy hash): the same time either way.
    ok = await passwords.verify(password, repository.password_hash_of(user))
    if user is None or not ok:
        raise InvalidCredentialsError(email)
    return user
