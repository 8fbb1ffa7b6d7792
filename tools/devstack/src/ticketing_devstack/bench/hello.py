"""The baseline servers, run by uvicorn with the services' flags.

`create_app`, a bare Starlette app: GET / answers a small JSON (what currentuser answers,
without the framework); POST / reads a JSON body and answers it with 201 (what POST
/api/tickets does, without the framework, the database and the bus).

`create_fastapi_app`: the same GET / as one FastAPI route with nothing of ours (no middleware,
no dependency): what the framework itself costs, so a figure can tell it from what we add.
"""

from __future__ import annotations

from fastapi import FastAPI
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


def create_fastapi_app() -> FastAPI:
    app = FastAPI(openapi_url=None, telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.get("/")
    async def hello() -> dict[str, None]:
        return {"currentUser": None}

    return app
