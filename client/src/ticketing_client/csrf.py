"""CSRF protection for every form: a signed double-submit token bound to the session.

A browser gets a random nonce in an HttpOnly cookie (`__Host-csrf` when cookies are Secure, so a
sibling subdomain cannot plant one). Each page's forms carry a token: the nonce and the session
cookie's value, hashed together and signed with CLIENT_CSRF_KEY, with a timestamp (itsdangerous'
salted, timed HMAC). A POST is let through only when its token (form field `csrf_token`, or the
`X-CSRF-Token` header for fetch) is signed by this key, is not older than a day, and matches the
nonce and session the request carries; otherwise it never reaches a handler, so no API call is
made, and the browser gets a 403 page. Signing in or out changes the session, so the next page
has new tokens; a page left open across that says to reload.

Why not a library: starlette-csrf reads the token from a header only (the pages must work
without JavaScript); fastapi-csrf-protect parses form bodies by string replacement; asgi-csrf
lets through every POST that carries no cookie (sign-in forgery) and does not bind its token to
the session. itsdangerous does the cryptography; this module only says what is bound, where the
token is read, and when the cookie is set.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from fastapi import Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from ticketing_client.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_FIELD = "csrf_token"
HEADER = "x-csrf-token"
# A page may stay open this long before its forms need a reload (orders last minutes).
MAX_AGE_SECONDS = 24 * 60 * 60
NONCE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


class CsrfRefusedError(Exception):
    """A state-changing request without a valid token for this browser and session."""


class Csrf:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.serializer = URLSafeTimedSerializer(settings.csrf_secret, salt="ticketing-client-csrf")
        self.cookie_name = "__Host-csrf" if settings.cookie_secure else "csrf"

    def _binding(self, request: Request, nonce: str) -> str:
        session = request.cookies.get(self.settings.cookie_name, "")
        return hashlib.sha256(f"{nonce}\0{session}".encode()).hexdigest()

    def _nonce(self, request: Request) -> str:
        """This browser's nonce: its cookie's, else a new one (set on the response by
        `set_cookie`)."""
        nonce: str | None = getattr(request.state, "csrf_nonce", None)
        if nonce is None:
            nonce = request.cookies.get(self.cookie_name, "")
            if not NONCE.fullmatch(nonce):
                nonce = secrets.token_urlsafe(32)
                request.state.csrf_new_nonce = nonce
            request.state.csrf_nonce = nonce
        return nonce

    def token(self, request: Request) -> str:
        """The token this page's forms carry."""
        return self.serializer.dumps(self._binding(request, self._nonce(request)))

    def set_cookie(self, request: Request, response: Response) -> None:
        """Gives the browser the nonce its page's tokens are bound to, when it is new."""
        nonce: str | None = getattr(request.state, "csrf_new_nonce", None)
        if nonce:
            response.set_cookie(
                self.cookie_name,
                nonce,
                path="/",
                secure=self.settings.cookie_secure,
                httponly=True,
                samesite="lax",
            )

    async def check(self, request: Request) -> None:
        """Raises CsrfRefusedError unless a state-changing request carries a valid token."""
        if request.method in SAFE_METHODS:
            return
        nonce = request.cookies.get(self.cookie_name, "")
        if not NONCE.fullmatch(nonce):
            raise CsrfRefusedError("no CSRF cookie")
        sent = request.headers.get(HEADER)
        if sent is None:
            value = (await request.form()).get(FORM_FIELD)
            sent = value if isinstance(value, str) else ""
        try:
            bound = self.serializer.loads(sent, max_age=MAX_AGE_SECONDS)
        except BadData as exc:
            raise CsrfRefusedError("bad or expired CSRF token") from exc
        if not isinstance(bound, str) or not hmac.compare_digest(
            bound, self._binding(request, nonce)
        ):
            raise CsrfRefusedError("CSRF token for another browser or session")


def csrf_of(request: Request) -> Csrf:
    csrf: Csrf = request.app.state.csrf
    return csrf


async def require_csrf(request: Request) -> None:
    """The pages' router dependency: before any handler (and so any API call) runs."""
    await csrf_of(request).check(request)
