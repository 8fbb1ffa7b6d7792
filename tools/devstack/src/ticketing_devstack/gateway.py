"""The local gateway: what ingress-nginx does in Kubernetes, for `make up` and the e2e tests.

Upstreams come from GATEWAY_UPSTREAMS (JSON: service -> base URL). A service that is not running
(the web client before it exists, or one being restarted) is a 502/404 in the API's error shape,
not a hang.

The gateway keeps no state between requests: it forwards exactly the headers the browser sent
(its Cookie included) and returns exactly what the service answered (Set-Cookie included). Its
upstream client is an aiohttp session with a cookie jar that keeps nothing (`DummyCookieJar`):
a client's jar, shared by every browser, once handed the last signed-in user's session to every
browser that sent none of its own.

Why aiohttp and not httpx: httpcore's pool checked every pooled connection with a select() on
every request, so the gateway's CPU per request grew with the number of connections; aiohttp's
pool does not (the figures before and after: BENCHMARKS.md, "Between 1eddfd6 and PREVIOUS").
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from yarl import URL

from ticketing_devstack.routes import route

# Hop-by-hop headers (RFC 9110 7.6.1) are per connection and must not be forwarded; the
# framing (content-length) is recomputed for the body as forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
# The gateway's own server writes these on every response it sends.
OWN_RESPONSE_HEADERS = frozenset({"date", "server"})
NOT_PASSED_BACK = HOP_BY_HOP | OWN_RESPONSE_HEADERS
# aiohttp adds these to a request that lacks them (and Content-Type to one with a body); the
# service must see only what the browser sent.
NOT_ADDED = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
# Only a safe method (RFC 9110 9.2.1) is retried when the pooled connection failed before the
# answer came, as nginx's proxy_next_upstream does by default: the upstream may already have
# acted on the request. PUT and DELETE are idempotent by the RFC, but not here: a repeated ticket
# edit bumps its version twice and its second answer can be a false 400.
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
# What the browser says about who forwarded it is never passed on: the gateway writes its own
# X-Forwarded-For (its peer's address, replacing any the browser sent, as a stock ingress-nginx
# does), -Proto and -Host. A browser that could send its own would choose the address the
# services' rate limits count.
FORWARDING = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-real-ip",
        "forwarded",
    }
)
# A pooled connection the upstream has closed (or is closing) fails on reuse in one of these ways
# (ClientOSError: reset or broken pipe). A connection that could not be made at all is a
# ClientConnectorError, a ClientOSError too, but nothing went out on it: not a stale connection.
STALE_CONNECTION = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ClientConnectionResetError,
)
# Any failure to get an answer: a timeout is an asyncio.TimeoutError, not always a ClientError.
UPSTREAM_FAILED = (aiohttp.ClientError, TimeoutError)
# Idle connections are dropped before uvicorn's own keep-alive timeout (5 s) closes them, so the
# pool does not hand out a connection the upstream is closing at that very moment. (aiohttp never
# reuses one idle for longer, and closes it within twice that.)
KEEPALIVE_EXPIRY = 2.0
# 30 s for the whole exchange; 2 s to open a connection (not counting a wait for a free one).
TIMEOUT = aiohttp.ClientTimeout(total=30.0, sock_connect=2.0)


def _unavailable(service: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": f"Service unavailable: {service}"}]}, 502)


def _session(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=TIMEOUT,
        # The body is passed on as the service encoded it (Content-Encoding included).
        auto_decompress=False,
        skip_auto_headers=NOT_ADDED,
    )
    # aiohttp resends an idempotent request (PUT and DELETE too) once on a failed connection, and
    # through the pool, where the next connection may be as stale as the first (every one of them,
    # when a service restarts). The gateway retries only a safe one itself, on a new connection;
    # aiohttp's own test client turns it off too.
    session._retry_connection = False
    return session


class Gateway:
    """Forwards one request to its upstream; retries a safe one (GET/HEAD/OPTIONS) once on a new
    connection when the pooled connection turned out to be closed."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self._sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession] | None = None

    async def start(self) -> None:
        """Open the connection pools: in the running event loop, which aiohttp binds them to."""
        pooled = aiohttp.TCPConnector(
            limit=500, limit_per_host=0, keepalive_timeout=KEEPALIVE_EXPIRY
        )
        # No keep-alive at all: every request through it opens a new connection.
        fresh = aiohttp.TCPConnector(force_close=True)
        self._sessions = (_session(pooled), _session(fresh))

    async def aclose(self) -> None:
        if self._sessions is not None:
            for session in self._sessions:
                await session.close()
            self._sessions = None

    async def handle(self, request: Request) -> Response:
        """Forward one request to the service its path routes to."""
        service = route(request.url.path)
        base = self.table.get(service)
        if base is None:
            return JSONResponse({"errors": [{"message": "Not Found"}]}, status_code=404)
        assert self._sessions is not None, "the gateway's lifespan has not started"
        pooled, fresh = self._sessions
        url, headers = _upstream_request(request, base)
        body = await request.body()
        try:
            return await _forward(pooled, request.method, url, headers, body)
        except aiohttp.ClientConnectorError:
            return _unavailable(service)
        except STALE_CONNECTION:
            if request.method not in SAFE:
                return _unavailable(service)
        except UPSTREAM_FAILED:
            return _unavailable(service)
        try:
            return await _forward(fresh, request.method, url, headers, body)
        except UPSTREAM_FAILED:
            return _unavailable(service)


async def _forward(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    headers: list[tuple[str, str]],
    body: bytes,
) -> Response:
    async with session.request(
        method, url, headers=headers, data=body or None, allow_redirects=False
    ) as upstream:
        # Raw bytes: the body is passed on as the service encoded it, never re-encoded.
        content = await upstream.read()
        headers_out = [
            (key, value)
            for key, value in upstream.raw_headers
            if key.decode("latin-1").lower() not in NOT_PASSED_BACK
        ]
    out = Response(content=content, status_code=upstream.status)
    # Starlette set content-length for `content`; every other header is the service's own,
    # repeated ones (several Set-Cookie) included, in order.
    out.raw_headers.extend(headers_out)
    return out


def _text(raw: bytes) -> str:
    # aiohttp takes the request head as text and writes it as UTF-8: bytes that are UTF-8 (what
    # browsers send beyond ASCII) go out unchanged. Others (no browser sends them) can only be
    # read as Latin-1 and so reach the service re-encoded, rather than fail the request.
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _upstream_request(request: Request, base: str) -> tuple[URL, list[tuple[str, str]]]:
    # Header names listed in Connection are hop-by-hop too (RFC 9110 7.6.1).
    connection = {
        token.strip().lower() for token in request.headers.get("connection", "").split(",")
    }
    drop = HOP_BY_HOP | FORWARDING | connection
    # Host among them: the service sees the host the browser asked for, as behind the ingress.
    headers = [
        (_text(key), _text(value))
        for key, value in request.headers.raw
        if key.decode("latin-1").lower() not in drop
    ]
    # The TCP peer, whatever the browser claimed.
    client_host = request.client.host if request.client else ""
    headers += [
        ("x-forwarded-for", client_host),
        ("x-forwarded-proto", request.url.scheme),
        ("x-forwarded-host", _text(request.headers.get("host", "").encode("latin-1"))),
    ]
    # The path and query exactly as the browser encoded them (`encoded`: yarl leaves them be).
    target = _text(request.scope.get("raw_path") or request.url.path.encode())
    if query := request.scope.get("query_string", b""):
        target += "?" + _text(query)
    return URL(base + target, encoded=True), headers


def create_app(upstreams: dict[str, str] | None = None) -> Starlette:
    table: dict[str, str] = upstreams or json.loads(os.environ.get("GATEWAY_UPSTREAMS", "{}"))
    gateway = Gateway(table)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[Route("/{path:path}", gateway.handle, methods=methods)], lifespan=lifespan
    )
