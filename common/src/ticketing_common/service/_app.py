"""The FastAPI app a service is served by: its documents under the service's prefix, and the
stack of middleware every request goes through (limits, telemetry, errors, proxy headers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ticketing_common._apidocs import docs_router
from ticketing_common.limits import BodySizeLimit, ConcurrencyLimit, Line
from ticketing_common.service._errors import install_error_handlers
from ticketing_common.service._openapi import openapi_document
from ticketing_common.settings import ServiceSettings
from ticketing_common.telemetry.http import METRICS_PATH, NOT_TRACED, HttpTelemetry

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def new_app(
    name: str,
    prefix: str,
    settings: ServiceSettings,
    *,
    lifespan: Lifespan,
    lines: Sequence[Line],
) -> FastAPI:
    """The app of service `name`, with no routes yet; `lines`: paths served in lines of their
    own (`limits.Line`)."""
    # The documentation under the service's own prefix, so the gateway and the Ingress, which
    # route by prefix, reach it: /api/tickets/docs and /api/tickets/openapi.json. The page is
    # ours (`_apidocs`: Swagger UI from the service itself, under a strict CSP), not FastAPI's,
    # which loads it from a CDN with an inline script.
    app = FastAPI(
        title=f"ticketing-{name}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{prefix}/openapi.json",
        # Ours is `telemetry.http.HttpTelemetry`; FastAPI's own would switch itself on (spans
        # for every dependency) the day anything sets a global tracer provider, and checks
        # whether it should on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # Ahead of the API's routes (`/api/tickets/{id}` would take "docs" for an id); the direct
    # routes still go first.
    app.include_router(docs_router(prefix))
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Outside the body limit (a request waiting for its turn has read nothing), inside the
    # telemetry (its time in line counts, and a refusal is counted).
    app.add_middleware(
        ConcurrencyLimit,
        limit=settings.http_concurrency,
        queue=settings.http_queue,
        exempt=(*NOT_TRACED, METRICS_PATH),
        lines=lines,
    )
    # Around everything but the proxy headers below: it sees every answer, 500s included.
    app.add_middleware(HttpTelemetry, service=name)
    install_error_handlers(app)
    # Outermost: the client's address is known before anything runs (and is logged).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.openapi = partial(openapi_document, app)  # type: ignore[method-assign]
    return app
