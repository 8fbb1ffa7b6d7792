"""The baseline server: a bare Starlette app, run by uvicorn with the services' flags.

GET / answers a small JSON (what currentuser answers, without the framework); POST / reads a
JSON body and answers it with 201 (what POST /api/tickets does, without the framework, the
database and the bus).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(_: Request) -> JSONResponse:
    return JSONResponse({"currentUser": None})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(await request.json(), status_code=201)


def create_app() -> Starlette:
    return Starlette(routes=[Route("/", hello), Route("/", echo, methods=["POST"])])
