"""The session: a signed JWT in an HttpOnly cookie, issued by auth and verified by every service.

HS256 only (a token claiming `alg: none` or any other algorithm is rejected by PyJWT because we
pass the allowed list), an `exp` that is required, and a cookie with Max-Age, SameSite=Lax and
Secure unless turned off for plain-http local development (flaw 7).
"""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from cachetools import TTLCache
from fastapi import Depends, Request, Response
from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS
from pydantic import BaseModel

from ticketing_common.errors import NotAuthorizedError
from ticketing_common.settings import ServiceSettings

__all__ = [
    "CurrentUser",
    "OptionalUser",
    "UserClaims",
    "clear_session_cookie",
    "issue_token",
    "optional_user",
    "set_session_cookie",
    "verify_token",
]

ALGORITHM = "HS256"


class UserClaims(BaseModel):
    """Who is signed in, as the session token says."""

    id: str
    email: str


def issue_token(*, user_id: str, email: str, settings: ServiceSettings) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "email": email,
        "iat": now,
        "exp": now + timedelta(seconds=settings.jwt_ttl_seconds),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


class _PreparedHS256(HMACAlgorithm):
    """HS256 with the key checked and converted once per key, not on every verification (PyJWT
    prepares it for each call: a quarter of a verification's cost)."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)

    @functools.lru_cache(maxsize=4)  # noqa: B019  # one instance for the process; keys are few
    def prepare_key(self, key: str | bytes) -> bytes:
        return super().prepare_key(key)


_JWS = PyJWS(algorithms=[])
_JWS.register_algorithm(ALGORITHM, _PreparedHS256())
# Verified tokens, by (key, token), for a short while: a signed-in user's every request carries
# the same cookie. Only a valid signature gets in; the expiry is checked again on every hit.
VERIFIED_TTL_SECONDS = 60.0
_verified: TTLCache[tuple[str, str], tuple[UserClaims, float]] = TTLCache(
    maxsize=10_000, ttl=VERIFIED_TTL_SECONDS
)


def verify_token(token: str, *, settings: ServiceSettings) -> UserClaims | None:
    """The claims of a valid token; None for a missing, expired, tampered or unsigned one."""
    key = settings.jwt_secret
    hit = _verified.get((key, token))
    if hit is not None:
        claims, expires = hit
        return claims if time.time() < expires else None
    try:
        # The signature, with the allowed algorithm only (`alg: none` or another is refused).
        claims = json.loads(_JWS.decode(token, key, algorithms=[ALGORITHM]))
        expires, subject = claims["exp"], claims["sub"]
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            return None
        user = UserClaims(id=str(subject), email=str(claims.get("email", "")))
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        return None
    if time.time() >= expires:
        return None
    _verified[(key, token)] = (user, float(expires))
    return user


def set_session_cookie(response: Response, token: str, *, settings: ServiceSettings) -> None:
    response.set_cookie(
        settings.cookie_name,
        token,
        max_age=settings.jwt_ttl_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )


def clear_session_cookie(response: Response, *, settings: ServiceSettings) -> None:
    response.delete_cookie(
        settings.cookie_name,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )


def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.runtime.settings
    return settings


async def optional_user(request: Request) -> UserClaims | None:
    settings = _settings(request)
    token = request.cookies.get(settings.cookie_name)
    if not token:
        return None
    return verify_token(token, settings=settings)


async def _require_user(user: Annotated[UserClaims | None, Depends(optional_user)]) -> UserClaims:
    if user is None:
        raise NotAuthorizedError()
    return user


CurrentUser = Annotated[UserClaims, Depends(_require_user)]
OptionalUser = Annotated[UserClaims | None, Depends(optional_user)]
