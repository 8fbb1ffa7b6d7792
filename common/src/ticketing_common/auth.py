"""The session: a signed JWT in an HttpOnly cookie, issued by auth and verified by every service.

HS256 only (a token claiming `alg: none` or any other algorithm is rejected by PyJWT because we
pass the allowed list), an `exp` that is required, and a cookie with Max-Age, SameSite=Lax and
Secure unless turned off for plain-http local development (flaw 7).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, Request, Response
from pydantic import BaseModel

from ticketing_common.errors import NotAuthorizedError
from ticketing_common.settings import ServiceSettings

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


def verify_token(token: str, *, settings: ServiceSettings) -> UserClaims | None:
    """The claims of a valid token; None for a missing, expired, tampered or unsigned one."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
        )
        return UserClaims(id=str(claims["sub"]), email=str(claims.get("email", "")))
    except (jwt.InvalidTokenError, KeyError, ValueError):
        return None


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


async def require_user(user: Annotated[UserClaims | None, Depends(optional_user)]) -> UserClaims:
    if user is None:
        raise NotAuthorizedError()
    return user


CurrentUser = Annotated[UserClaims, Depends(require_user)]
OptionalUser = Annotated[UserClaims | None, Depends(optional_user)]
