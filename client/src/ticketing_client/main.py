"""The web client: `uvicorn --factory ticketing_client.main:create_app`.

Server-rendered pages over the API (each service called directly); every form posts here, the
client calls the API with the browser's cookie, then redirects. It owns no data.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ticketing_client import pages
from ticketing_client.api import Api, ApiUnavailableError, ForwardBrowserAddress
from ticketing_client.csrf import Csrf, CsrfRefusedError
from ticketing_client.settings import Settings, get_settings
from ticketing_common.logs import configure_logging

HERE = Path(__file__).parent
log = logging.getLogger("ticketing_client")


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging("client", settings.log_level)
    # One line per API call would drown the log; failures are logged where they matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client per process, for every browser: it keeps no cookies (see api.py).
        app.state.api = Api(settings, transport=transport)
        try:
            yield
        finally:
            await app.state.api.aclose()

    app = FastAPI(
        title="Ticketing web client",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.csrf = Csrf(settings)
    app.state.content_security_policy = pages.content_security_policy(settings)
    app.add_middleware(ForwardBrowserAddress)
    # Outside it: the browser's address is the trusted edge's X-Forwarded-For. (uvicorn applies
    # the same on the same FORWARDED_ALLOW_IPS when it serves the app; once more changes nothing.)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
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
    async def api_not_found(request: Request) -> Response:
        return JSONResponse({"errors": [{"message": "Not Found"}]}, status_code=404)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    for path in ("/api", "/api/{path:path}"):
        app.add_route(path, api_not_found, methods=methods, include_in_schema=False)

    app.include_router(pages.router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return await pages.not_found(request)
        return pages.error_page(request, exc.status_code)

    @app.exception_handler(pages.SignInRequiredError)
    async def sign_in_first(request: Request, exc: pages.SignInRequiredError) -> Response:
        return pages.to_signin(request)

    @app.exception_handler(CsrfRefusedError)
    async def csrf_refused(request: Request, exc: CsrfRefusedError) -> Response:
        log.warning("form refused", extra={"path": request.url.path, "reason": str(exc)})
        return pages.forbidden_page(request)

    @app.exception_handler(ApiUnavailableError)
    async def api_unavailable(request: Request, exc: ApiUnavailableError) -> Response:
        log.warning("api unavailable", extra={"path": request.url.path, "reason": str(exc)})
        return pages.unavailable_page(request)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("page failed", extra={"path": request.url.path})
        return pages.error_page(request, 500)

    return app
