"""The web client: `uvicorn --factory ticketing_client.main:create_app`.

Server-rendered pages over the API (each service called directly); every form posts here, the
client calls the API with the browser's cookie, then redirects. It owns no data.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ticketing_client import pages
from ticketing_client.api import Api, ForwardBrowserAddress
from ticketing_client.csrf import Csrf
from ticketing_client.pages.error_pages import install_error_pages
from ticketing_client.pages.rendering import content_security_policy
from ticketing_client.settings import Settings, get_settings
from ticketing_common.logs import configure_logging

HERE = Path(__file__).parent
# Everything the edge may send to an API path (see `_api_not_found`).
API_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

probes = APIRouter(include_in_schema=False)


@probes.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@probes.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    # Ready once its API client is open; the API's own health is the services' readiness
    # (a page answers "restarting" while one is down), so a down service never takes the
    # web client out of rotation too.
    api: Api | None = getattr(request.app.state, "api", None)
    if api is None or api.closed:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ready"})


# The edge routes every path that is no service's to the client (the Ingress's `/`): an API
# path there (a typo, a removed route) is the API's 404, in its error shape, whatever the
# method, not the HTML page a browser would get.
async def _api_not_found(request: Request) -> Response:
    return JSONResponse({"errors": [{"message": "Not Found"}]}, status_code=404)


def _lifespan(
    settings: Settings, transport: httpx.AsyncBaseTransport | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client per process, for every browser: it keeps no cookies (see api.py).
        app.state.api = Api(settings, transport=transport)
        try:
            yield
        finally:
            await app.state.api.aclose()

    return lifespan


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("client", settings.log_level)
    # One line per API call would drown the log; failures are logged where they matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = FastAPI(
        title="Ticketing web client",
        lifespan=_lifespan(settings, transport),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.csrf = Csrf(settings)
    app.state.content_security_policy = content_security_policy(settings)
    app.add_middleware(ForwardBrowserAddress)
    # Outside it: the browser's address is the trusted edge's X-Forwarded-For. (uvicorn applies
    # the same on the same FORWARDED_ALLOW_IPS when it serves the app; once more changes nothing.)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(probes)
    for path in ("/api", "/api/{path:path}"):
        app.add_route(path, _api_not_found, methods=API_METHODS, include_in_schema=False)
    app.include_router(pages.router)
    install_error_pages(app)
    return app
