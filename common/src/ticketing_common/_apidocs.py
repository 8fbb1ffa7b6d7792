"""A service's API documentation page, `<prefix>/docs`, served by the service itself.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script: offline it
is blank, and a strict Content-Security-Policy refuses it. This one is Swagger UI from the
`fastapi-offline` package's files, served under `<prefix>/docs/static/<version>/`, started by a
small script of its own, `<prefix>/docs/swagger-init.js`: the page runs no inline script and
no inline style, so it is sent with a Content-Security-Policy that allows neither.

The service factory wires it in: `FastAPI(docs_url=None, ...)` (FastAPI's page off) and
`app.include_router(docs_router(prefix))`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import swagger_ui_default_parameters
from starlette.responses import FileResponse, HTMLResponse, Response

STATIC = Path(fastapi_offline.__file__).parent / "static"

# Swagger UI draws its icons from `data:` images in its stylesheet; everything else is the
# service's own (the document it fetches, "Try it out"), and nothing runs inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The assets' paths carry the package's version, so a year's cache is safe: an upgrade
# changes their URLs. The page and its initializer are revalidated, so they name the new ones.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
NOSNIFF = {"x-content-type-options": "nosniff"}


@dataclass(frozen=True)
class Asset:
    """One of Swagger UI's files, as the package ships it."""

    name: str
    media_type: str


ASSETS = (
    Asset("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    Asset("swagger-ui.css", "text/css; charset=utf-8"),
    Asset("favicon.png", "image/png"),
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{static}/swagger-ui.css">
<link rel="icon" type="image/png" href="{static}/favicon.png">
<script src="{static}/swagger-ui-bundle.js" defer></script>
<script src="{init}" defer></script>
</head>
<body>
<noscript><p>This page needs JavaScript. The API's description is
<a href="{openapi}">{openapi}</a>.</p></noscript>
<div id="swagger-ui"></div>
</body>
</html>
"""


@cache
def _assets_version() -> str:
    """The version of the package whose files are served: part of their URLs."""
    return version("fastapi-offline")


def _initializer(openapi_url: str) -> str:
    """Swagger UI started on the document at `openapi_url`, as FastAPI's page starts it, and
    without the online validator (a request to another host)."""
    settings = {
        "url": openapi_url,
        **swagger_ui_default_parameters,
        "validatorUrl": None,
    }
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in settings.items()]
    return "\n".join(
        [
            '"use strict";',
            "window.ui = SwaggerUIBundle({",
            *lines,
            "  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],",
            "});",
            "",
        ]
    )


def docs_router(prefix: str) -> APIRouter:
    """The documentation of the app it is included in, under `prefix` (`/api/tickets`; "" for
    none): `<prefix>/docs`, its initializer and Swagger UI's files. The document it shows is
    the app's `openapi_url`; none of these routes is in that document."""
    docs = f"{prefix}/docs"
    init = f"{docs}/swagger-init.js"
    static = f"{docs}/static/{_assets_version()}"

    async def page(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        body = PAGE.format(
            title=html.escape(request.app.title),
            static=html.escape(root + static),
            init=html.escape(root + init),
            openapi=html.escape(root + (request.app.openapi_url or "")),
        )
        headers = {
            **NOSNIFF,
            "content-security-policy": CONTENT_SECURITY_POLICY,
            "cache-control": REVALIDATE,
        }
        return HTMLResponse(body, headers=headers)

    async def initializer(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return Response(
            _initializer(root + (request.app.openapi_url or "")),
            media_type="text/javascript; charset=utf-8",
            headers={**NOSNIFF, "cache-control": REVALIDATE},
        )

    router = APIRouter(include_in_schema=False)
    router.add_route(docs, page, methods=["GET", "HEAD"], include_in_schema=False)
    router.add_route(init, initializer, methods=["GET", "HEAD"], include_in_schema=False)
    for asset in ASSETS:
        path = f"{static}/{asset.name}"
        router.add_route(path, _asset(asset), methods=["GET", "HEAD"], include_in_schema=False)
    return router


def _asset(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint serving `asset` from the package's files."""
    path = STATIC / asset.name
    headers = {**NOSNIFF, "cache-control": IMMUTABLE}

    async def serve(request: Request) -> Response:
        return FileResponse(path, media_type=asset.media_type, headers=headers)

    return serve
