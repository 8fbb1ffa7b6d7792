"""The operations routes of every service: liveness, readiness, and the bench's Mongo count.

Operations, not the API: left out of the OpenAPI document (and not routed by the gateway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ticketing_common.errors import error_body
from ticketing_common.mongo import CommandCounter
from ticketing_common.service._runtime import RuntimeT

# A readiness check: returns a problem ("redis: down") or None when fine.
ReadinessCheck: TypeAlias = Callable[[RuntimeT], Awaitable[str | None]]


def health_router(checks: Sequence[ReadinessCheck[RuntimeT]]) -> APIRouter:
    """/healthz and /readyz; `checks` are the service's own, run after its Mongo's ping."""
    router = APIRouter(tags=["health"], include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Ready: what this pod needs to serve (its Mongo, the service's own checks) answers.

        NATS is not among them: readiness is about the pod, not the bus. With the bus down (or
        a stream full) writes still succeed and their events wait in the outbox, and reads are
        served; taking every pod out of its Service for it would turn a bus outage into the
        whole site's. It is reported (`degraded`) and alerted on by its metrics instead."""
        runtime: RuntimeT = request.app.state.runtime
        problems: list[str] = []
        if runtime.db is not None:
            try:
                await runtime.db.command("ping")
            except Exception as exc:
                problems.append(f"mongo: {type(exc).__name__}")
        for check in checks:
            problem = await check(runtime)
            if problem:
                problems.append(problem)
        if problems:
            return JSONResponse(error_body("Not ready: " + ", ".join(problems)), status_code=503)
        if not await runtime.bus.ready():
            return JSONResponse({"status": "ready", "degraded": ["nats: not connected"]})
        return JSONResponse({"status": "ready"})

    return router


def debug_router(counter: CommandCounter) -> APIRouter:
    """Only with MONGO_COUNT_COMMANDS (`make bench`): what this process has asked Mongo."""
    router = APIRouter(tags=["debug"], include_in_schema=False)

    @router.get("/debug/mongo-commands")
    async def mongo_commands() -> dict[str, int]:
        """Commands sent to Mongo since start, by command name."""
        return counter.snapshot()

    return router
