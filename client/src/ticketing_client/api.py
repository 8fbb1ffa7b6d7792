"""The API, as the web client calls it: each service directly (`Settings.api_routes`), on
behalf of one browser at a time.

One `httpx.AsyncClient` serves every browser, so it must never remember a session: its cookie
jar refuses every cookie (a shared jar once handed the last signed-in user's session to every
browser that sent none). Each call carries exactly the Cookie header its browser sent, and the
Set-Cookie headers the API answers are handed back to that browser unchanged. It also carries
the browser's address in X-Forwarded-For, so that the API, which limits sign-in attempts per
client address, does not see every browser as this one process: the address the edge gave the
client (believed only from FORWARDED_ALLOW_IPS), never one the browser wrote itself.
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

# The browser's address, which the API calls made for the request being served carry.
_FORWARDED_FOR: ContextVar[str | None] = ContextVar("forwarded_for", default=None)


def browser_address(scope: Scope) -> str | None:
    """The browser's address: the request's peer, as uvicorn's ProxyHeadersMiddleware (outside
    this one, on the client's FORWARDED_ALLOW_IPS) made it of a trusted edge's X-Forwarded-For.
    Only that one address is forwarded: whatever else the request's header says was written by
    the browser, or by a proxy the client does not trust."""
    client = scope.get("client")
    return str(client[0]) if client else None


class ForwardBrowserAddress(HttpMiddleware):
    """ASGI middleware: every API call made while serving a request carries its browser's
    address as X-Forwarded-For (see `browser_address`)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _FORWARDED_FOR.set(browser_address(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _FORWARDED_FOR.reset(token)


class Api:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.routes = settings.api_routes
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.client_api_timeout_seconds, connect=2.0),
            transport=transport,
            cookies=no_cookie_jar(),
            follow_redirects=False,
        )
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True
        await self.http.aclose()

    def url(self, path: str) -> str:
        """The URL of an API path: on the service its prefix routes to (a prefix is whole path
        segments, as the gateway and the Ingress route)."""
        for prefix, base in self.routes:
            if path == prefix or path.startswith((prefix + "/", prefix + "?")):
                return base.rstrip("/") + path
        raise ValueError(f"no API service serves {path}")

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
                method, self.url(path), headers=headers, content=content, params=params
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
