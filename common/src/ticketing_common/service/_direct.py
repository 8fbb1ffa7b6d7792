"""Direct routes: the hottest reads served by plain Starlette routes, ahead of FastAPI's.

A fast path, for the figures in BENCHMARKS.md, "Why the fast paths exist: direct routes".
FastAPI's own handling of a request (the nested routers' matching, solving dependencies,
validating and serializing the answer) costs more than the whole of a cheap read such as
auth's currentuser, which every page of the web client makes. Such an endpoint takes only the
request and returns its response; served from a route matched ahead of the routers, it keeps
its declaration in the router, so the OpenAPI document (and the fuzzing that checks answers
against it) describes what serves it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

# An endpoint that takes the request and answers it, with nothing for FastAPI to solve.
DirectEndpoint: TypeAlias = Callable[[Request], Awaitable[Response]]


class DirectRoute(Route):
    """A plain Starlette route that puts itself in the scope, as FastAPI's routes do: FastAPI's
    router does not for a route of Starlette's, and the metrics and spans name each request by
    its route's template."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await super().handle(scope, receive, send)


def direct_routes(routers: list[APIRouter], endpoints: list[DirectEndpoint]) -> list[Route]:
    """Plain Starlette routes for `endpoints`, at the path and methods their router declares;
    each must be declared once and take nothing but the request."""
    routes: list[Route] = []
    for endpoint in endpoints:
        declared = [
            r
            for router in routers
            for r in router.routes
            if isinstance(r, APIRoute) and r.endpoint is endpoint
        ]
        if len(declared) != 1:
            raise ValueError(f"{endpoint.__name__}: declared {len(declared)} times in the routers")
        (route,) = declared
        if route.dependant.dependencies or route.dependant.query_params or route.body_field:
            raise ValueError(f"{endpoint.__name__}: takes more than the request")
        routes.append(
            DirectRoute(route.path, endpoint, methods=sorted(route.methods or ()), name=route.name)
        )
    return routes
