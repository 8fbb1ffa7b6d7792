"""The local gateway: what ingress-nginx does in Kubernetes, for `make up` and the e2e tests.

Upstreams come from GATEWAY_UPSTREAMS (JSON: service -> base URL). A service that is not running
(the web client before it exists, or one being restarted) is a 502/404 in the API's error shape,
not a hang.
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

# Hop-by-hop headers (RFC 9110 7.6.1) are per connection and must not be forwarded.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}


def create_app(
    upstreams: dict[str, str] | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    table: dict[str, str] = upstreams or json.loads(os.environ.get("GATEWAY_UPSTREAMS", "{}"))
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=2.0), follow_redirects=False, transport=transport
    )

    async def proxy(request: Request) -> Response:
        service = route(request.url.path)
        base = table.get(service)
        if base is None:
            return JSONResponse({"errors": [{"message": "Not Found"}]}, status_code=404)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        client_host = request.client.host if request.client else ""
        headers += [
            ("x-forwarded-for", client_host),
            ("x-forwarded-proto", request.url.scheme),
            ("x-forwarded-host", request.headers.get("host", "")),
        ]
        try:
            upstream = await client.request(
                request.method,
                base + request.url.path,
                params=request.url.query,
                headers=headers,
                content=await request.body(),
            )
        except httpx.TransportError:
            return JSONResponse(
                {"errors": [{"message": f"Service unavailable: {service}"}]}, status_code=502
            )
        out = Response(content=upstream.content, status_code=upstream.status_code)
        for key, value in upstream.headers.multi_items():
            # httpx already decoded the body; the gateway's own server sets date and server.
            if key.lower() not in HOP_BY_HOP | {"content-encoding", "date", "server"}:
                out.headers.append(key, value)
        return out

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", proxy, methods=methods)], lifespan=lifespan)
