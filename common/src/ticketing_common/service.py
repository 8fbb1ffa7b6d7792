"""The one way a Ticketing service is assembled.

`create_service_app` builds the FastAPI app of any service from a `ServiceSpec`: error handlers,
body-size limit, health routes, and a lifespan that opens one Mongo client and one bus
connection for the process, creates indexes, registers the event handlers and runs the outbox
relay. Tests pass an in-memory Mongo and bus instead of URLs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ticketing_common.bus import Bus, Handler, JetStreamBus
from ticketing_common.errors import error_body, install_error_handlers
from ticketing_common.events import Subject
from ticketing_common.limits import BodySizeLimit
from ticketing_common.logs import configure_logging
from ticketing_common.mongo import IndexSpec, connect, ensure_indexes
from ticketing_common.outbox import PENDING, OutboxRelay
from ticketing_common.settings import ServiceSettings

log = logging.getLogger("ticketing.service")


@dataclass
class Runtime:
    """Per-process resources, created once in the lifespan and reached through `deps`."""

    settings: ServiceSettings
    mongo: Any
    db: Any
    bus: Bus
    relay: OutboxRelay
    extras: dict[str, Any] = field(default_factory=dict)


Subscriptions = Callable[[Runtime], Mapping[Subject, Handler]]
Hook = Callable[[Runtime], Awaitable[None]]
# A readiness check: returns a problem ("redis: down") or None when fine.
ReadinessCheck = Callable[[Runtime], Awaitable[str | None]]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    routers: list[APIRouter]
    indexes: list[IndexSpec] = field(default_factory=list)
    outbox_collections: list[str] = field(default_factory=list)
    subscriptions: Subscriptions | None = None
    on_startup: Hook | None = None
    on_shutdown: Hook | None = None
    # Expiration keeps its state in Redis and has no Mongo database.
    uses_mongo: bool = True
    readiness_checks: list[ReadinessCheck] = field(default_factory=list)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_db(request: Request) -> Any:
    return get_runtime(request).db


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
DbDep = Annotated[Any, Depends(get_db)]


def _health_router(spec: ServiceSpec) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        """Ready: Mongo and NATS are reachable."""
        problems: list[str] = []
        if runtime.db is not None:
            try:
                await runtime.db.command("ping")
            except Exception as exc:
                problems.append(f"mongo: {type(exc).__name__}")
        if not await runtime.bus.ready():
            problems.append("nats: not connected")
        for check in spec.readiness_checks:
            problem = await check(runtime)
            if problem:
                problems.append(problem)
        if problems:
            return JSONResponse(error_body("Not ready: " + ", ".join(problems)), status_code=503)
        return JSONResponse({"status": "ready"})

    return router


def create_service_app(
    spec: ServiceSpec,
    settings: ServiceSettings,
    *,
    mongo: Any = None,
    bus: Bus | None = None,
) -> FastAPI:
    configure_logging(spec.name, settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: Any = None
        db: Any = None
        if spec.uses_mongo:
            client = (
                mongo
                if mongo is not None
                else connect(
                    settings.mongo_url, app_name=spec.name, timeout=settings.mongo_timeout_seconds
                )
            )
            db = client[settings.mongo_db]
            # The relay's sweep looks for pending events every second, oldest first: indexed,
            # not a scan (nx-27017 gets the key without `_id`, see ensure_indexes).
            outbox_indexes = [
                IndexSpec(c, [(PENDING, 1), ("_id", 1)]) for c in spec.outbox_collections
            ]
            await ensure_indexes(db, [*spec.indexes, *outbox_indexes])
        the_bus: Bus = (
            bus
            if bus is not None
            else JetStreamBus(
                settings.nats_url,
                spec.name,
                ack_wait=settings.nats_ack_wait_seconds,
                max_deliver=settings.nats_max_deliver,
                retry_delay=settings.nats_retry_delay_seconds,
                retry_horizon=settings.nats_retry_horizon_seconds,
            )
        )
        relay = OutboxRelay(
            the_bus, db, spec.outbox_collections, sweep_seconds=settings.outbox_sweep_seconds
        )
        runtime = Runtime(settings=settings, mongo=client, db=db, bus=the_bus, relay=relay)
        app.state.runtime = runtime
        if spec.subscriptions is not None:
            for subject, handler in spec.subscriptions(runtime).items():
                the_bus.subscribe(subject, handler)
        if spec.on_startup is not None:
            await spec.on_startup(runtime)
        await the_bus.start()
        relay.start()
        log.info("service started", extra={"db": settings.mongo_db})
        try:
            yield
        finally:
            await relay.close()
            await the_bus.close()
            if spec.on_shutdown is not None:
                await spec.on_shutdown(runtime)
            if mongo is None and client is not None:
                await client.close()

    app = FastAPI(title=f"ticketing-{spec.name}", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(_health_router(spec))
    for router in spec.routers:
        app.include_router(router)
    return app
