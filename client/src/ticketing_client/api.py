"""The API, as the web client calls it: through the gateway (or the Ingress), on behalf of one
browser at a time.

One `httpx.AsyncClient` serves every browser, so it must never remember a session: its cookie
jar refuses every cookie (a shared jar once handed the last signed-in user's session to every
browser that sent none). Each call carries exactly the Cookie header its browser sent, and the
Set-Cookie headers the API answers are handed back to that browser unchanged. It also carries
the browser's address (X-Forwarded-For, as a proxy writes it), so that the API, which limits
sign-in attempts per client address, does not see every browser as this one process.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.request import Request as UrllibRequest

import httpx
from starlette.types import Receive, Scope, Send

from ticketing_client.settings import Settings
from ticketing_common.asgi import HttpMiddleware

TOO_MANY_ATTEMPTS = "Too many attempts, please wait a minute and try again."


class ApiUnavailableError(Exception):
    """The API could not be reached, or answered 502/503/504: a service is (re)starting."""


class _RefuseEveryCookie(DefaultCookiePolicy):
    def set_ok(self, cookie: Cookie, request: UrllibRequest) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: UrllibRequest) -> bool:
        return False


def no_cookie_jar() -> CookieJar:
    """A jar that never keeps a cookie."""
    return CookieJar(policy=_RefuseEveryCookie())


@dataclass
class ApiResult:
    status: int
    body: Any
    set_cookies: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def errors(self) -> list[dict[str, str]]:
        if isinstance(self.body, dict) and isinstance(self.body.get("errors"), list):
            return [e for e in self.body["errors"] if isinstance(e, dict)]
        return []

    def field_errors(self, fields: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
        """The API's messages by form field (first per field), and the rest for the form."""
        by_field: dict[str, str] = {}
        rest: list[str] = []
        for error in self.errors:
            message = str(error.get("message", ""))
            name = error.get("field")
            if name in fields and name not in by_field:
                by_field[str(name)] = message
            elif message:
                rest.append(message)
        if not by_field and not rest and not self.ok:
            rest.append(
                TOO_MANY_ATTEMPTS
                if self.status == 429
                else "Something went wrong, please try again."
            )
        return by_field, rest

    @property
    def message(self) -> str:
        return "; ".join(str(e.get("message", "")) for e in self.errors) or f"HTTP {self.status}"


UNAVAILABLE = frozenset({502, 503, 504})

# The X-Forwarded-For the API calls made for the browser request being served carry.
_FORWARDED_FOR: ContextVar[str | None] = ContextVar("forwarded_for", default=None)


def forwarded_for(scope: Scope) -> str | None:
    """X-Forwarded-For as a proxy writes it on: the request's own (if any), then the address it
    came from. The API believes only what its trusted proxies appended (FORWARDED_ALLOW_IPS),
    from the right, so what a browser claims itself is never taken for its address."""
    chain = [
        value.decode("latin-1").strip()
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
    ]
    if client := scope.get("client"):
        chain.append(str(client[0]))
    return ", ".join(part for part in chain if part) or None


class ForwardBrowserAddress(HttpMiddleware):
    """ASGI middleware: every API call made while serving a request carries its browser's
    X-Forwarded-For (see `forwarded_for`)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _FORWARDED_FOR.set(forwarded_for(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _FORWARDED_FOR.reset(token)


class Api:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(
            base_url=settings.client_api_url,
            timeout=httpx.Timeout(settings.client_api_timeout_seconds, connect=2.0),
            transport=transport,
            cookies=no_cookie_jar(),
            follow_redirects=False,
        )
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        cookie: str | None,
        body: Any = None,
        raw_json: str | None = None,
        params: dict[str, str] | None = None,
    ) -> ApiResult:
        """One API call with this browser's cookie; ApiUnavailableError on 502/503/504 or when
        the API cannot be reached."""
        headers = {"accept": "application/json"}
        if cookie:
            headers["cookie"] = cookie
        if self.settings.client_api_host:
            headers["host"] = self.settings.client_api_host
        if forwarded := _FORWARDED_FOR.get():
            headers["x-forwarded-for"] = forwarded
        content: bytes | None = None
        if raw_json is not None:
            content = raw_json.encode()
        elif body is not None:
            content = json.dumps(body).encode()
        if content is not None:
            headers["content-type"] = "application/json"
        try:
            res = await self.http.request(
                method, path, headers=headers, content=content, params=params
            )
        except httpx.TransportError as exc:
            raise ApiUnavailableError(str(exc)) from exc
        if res.status_code in UNAVAILABLE:
            raise ApiUnavailableError(f"{method} {path}: {res.status_code}")
        parsed: Any = None
        if res.content and "json" in res.headers.get("content-type", ""):
            try:
                parsed = res.json()
            except ValueError:
                parsed = None
        return ApiResult(res.status_code, parsed, res.headers.get_list("set-cookie"))

    async def call_until_known(
        self,
        method: str,
        path: str,
        *,
        cookie: str | None,
        body: Any = None,
    ) -> ApiResult:
        """A call about something only just created: a 404 is retried for a few seconds, while
        the answering service's replica learns of it from the bus."""
        deadline = time.monotonic() + self.settings.client_replica_wait_seconds
        delay = 0.1
        while True:
            result = await self.call(method, path, cookie=cookie, body=body)
            if result.status != 404 or time.monotonic() >= deadline:
                return result
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
