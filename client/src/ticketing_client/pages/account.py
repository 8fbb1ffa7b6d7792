"""Signing up, in and out: the auth pages and their forms."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from ticketing_client.pages.rendering import (
    form_page,
    form_text,
    redirect,
    rejected,
    render,
    with_cookies,
)
from ticketing_client.pages.session import api_of, cookie_of, current_user
from ticketing_client.views import safe_next

router = APIRouter()

AUTH_MODES = {"signup": "Sign up", "signin": "Sign in"}
AUTH_FIELDS = ("email", "password")


# Before `/auth/{mode}`, which would take "signout" for a mode.
@router.get("/auth/signout")
async def signout_page(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return redirect("/")
    return render(request, "signout.html", user, title="Sign out")


@router.post("/auth/signout")
async def signout(request: Request) -> Response:
    result = await api_of(request).call(
        "POST", "/api/users/signout", cookie=cookie_of(request), body={}
    )
    return with_cookies(redirect("/"), result)


def _auth_form(request: Request, mode: str, *, email: str = "", **context: Any) -> Response:
    """The sign-up or sign-in page (`next_url` and the messages in `context`)."""
    return form_page(
        request, "auth.html", None, title=AUTH_MODES[mode], mode=mode, email=email, **context
    )


@router.get("/auth/{mode}")
async def auth_page(request: Request, mode: str) -> Response:
    if mode not in AUTH_MODES:
        raise HTTPException(404)
    next_url = safe_next(request.query_params.get("next"))
    if await current_user(request):
        return redirect(next_url)
    return _auth_form(request, mode, next_url=next_url)


@router.post("/auth/{mode}")
async def authenticate(request: Request, mode: str) -> Response:
    if mode not in AUTH_MODES:
        raise HTTPException(404)
    data = await form_text(request, "email", "password", "next")
    next_url = safe_next(data["next"])
    result = await api_of(request).call(
        "POST",
        f"/api/users/{mode}",
        cookie=cookie_of(request),
        body={"email": data["email"].strip(), "password": data["password"]},
    )
    if result.ok:
        return with_cookies(redirect(next_url), result)
    return _auth_form(
        request, mode, email=data["email"], next_url=next_url, **rejected(result, AUTH_FIELDS)
    )
