"""The local gateway: what ingress-nginx does in Kubernetes, for `make up` and the e2e tests.

Upstreams come from GATEWAY_UPSTREAMS (JSON: service -> base URL). A service that is not running
(the web client before it exists, or one being restarted) is a 502/404 in the API's error shape,
not a hang.

The gateway keeps no state between requests: it forwards exactly the headers the browser sent
(its Cookie included) and returns exactly what the service answered (Set-Cookie included). It
talks to the upstreams through a bare connection pool, not an `httpx.AsyncClient`, because a
client has a cookie jar: one shared jar handed the last signed-in user's session to every
browser that sent none of its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
# RFC 9110 9.2.2: a request with an idempotent method may be retried automatically when the
# connection failed before the answer came (as nginx's proxy_next_upstream does).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# A pooled connection the upstream has closed (or is closing) fails on reuse in one of these ways.
STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# Idle connections are dropped before uvicorn's own keep-alive timeout (5 s) closes them, so the
# pool does not hand out a connection the upstream is closing at that very moment.
KEEPALIVE_EXPIRY = 2.0
TIMEOUT = httpx.Timeout(30.0, connect=2.0)


def _unavailable(service: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": f"Service unavailable: {service}"}]}, 502)


class Gateway:
    """Forwards one request to its upstream; retries an idempotent one once on a new connection
    when the pooled connection turned out to be closed."""

    def __init__(
        self, table: dict[str, str], *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.table = table
        self.pooled: httpx.AsyncBaseTransport = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=500,
                max_keepalive_connections=100,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            )
        )
        # No keep-alive at all: every request through it opens a new connection.
        self.fresh: httpx.AsyncBaseTransport = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0)
        )

    async def aclose(self) -> None:
        await self.pooled.aclose()
        if self.fresh is not self.pooled:
            await self.fresh.aclose()

    async def handle(self, request: Request) -> Response:
        """Forward one request to the service its path routes to."""
        service = route(request.url.path)
        base = self.table.get(service)
        if base is None:
            return JSONResponse({"errors": [{"message": "Not Found"}]}, status_code=404)
        body = await request.body()
        try:
            return await self._forward(self.pooled, request, base, body)
        except STALE_CONNECTION:
            if request.method not in IDEMPOTENT:
                return _unavailable(service)
        except httpx.TransportError:
            return _unavailable(service)
        try:
            return await self._forward(self.fresh, request, base, body)
        except httpx.TransportError:
            return _unavailable(service)

    async def _forward(
        self, transport: httpx.AsyncBaseTransport, request: Request, base: str, body: bytes
    ) -> Response:
        upstream = await transport.handle_async_request(_upstream_request(request, base, body))
        try:
            # Raw bytes: the body is passed on as the service encoded it, never re-encoded.
            # (The transport's stream itself: a mock transport has already read it once.)
            stream = upstream.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            content = b"".join([chunk async for chunk in stream])
        finally:
            await upstream.aclose()
        headers = [
            (key, value)
            for key, value in upstream.headers.raw
            if key.decode("latin-1").lower() not in NOT_PASSED_BACK
        ]
        out = Response(content=content, status_code=upstream.status_code)
        # Starlette set content-length for `content`; every other header is the service's own,
        # repeated ones (several Set-Cookie) included, in order.
        out.raw_headers.extend(headers)
        return out


def _upstream_request(request: Request, base: str, body: bytes) -> httpx.Request:
    # Header names listed in Connection are hop-by-hop too (RFC 9110 7.6.1).
    connection = {
        token.strip().lower() for token in request.headers.get("connection", "").split(",")
    }
    drop = HOP_BY_HOP | connection
    headers = [
        (key, value)
        for key, value in request.headers.raw
        if key.decode("latin-1").lower() not in drop
    ]
    client_host = request.client.host if request.client else ""
    headers += [
        (b"x-forwarded-for", client_host.encode()),
        (b"x-forwarded-proto", request.url.scheme.encode()),
        (b"x-forwarded-host", request.headers.get("host", "").encode("latin-1")),
    ]
    # The path exactly as the browser encoded it.
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    url = httpx.URL(base + raw_path.decode("latin-1"))
    if query := request.scope.get("query_string", b""):
        url = url.copy_with(query=query)
    return httpx.Request(
        request.method,
        url,
        headers=headers,
        content=body,
        extensions={"timeout": TIMEOUT.as_dict()},
    )


def create_app(
    upstreams: dict[str, str] | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    table: dict[str, str] = upstreams or json.loads(os.environ.get("GATEWAY_UPSTREAMS", "{}"))
    gateway = Gateway(table, transport=transport)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await gateway.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[Route("/{path:path}", gateway.handle, methods=methods)], lifespan=lifespan
    )
