"""Who is asking: the app's API client and settings, the browser's cookie, the signed-in user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from ticketing_client.api import Api
from ticketing_client.settings import Settings

# The user as auth describes it (`currentUser`: id, email).
User = dict[str, Any]


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def cookie_of(request: Request) -> str | None:
    return request.headers.get("cookie")


async def current_user(request: Request) -> User | None:
    """The signed-in user, asked of auth with this browser's cookie (no cookie: nobody)."""
    cookie = cookie_of(request)
    if not cookie:
        return None
    result = await api_of(request).call("GET", "/api/users/currentuser", cookie=cookie)
    user = result.body.get("currentUser") if isinstance(result.body, dict) else None
    return user if isinstance(user, dict) else None


class SignInRequiredError(Exception):
    """A private page asked for by nobody: answered with `rendering.to_signin`."""


async def signed_in(request: Request) -> User:
    user = await current_user(request)
    if user is None:
        raise SignInRequiredError
    return user


SignedIn = Annotated[User, Depends(signed_in)]
