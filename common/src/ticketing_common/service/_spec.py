"""The one way a Ticketing service is assembled: its `ServiceSpec`, and the app made from it.

`create_service_app` builds the FastAPI app of any service from its spec (`_app`: error
handlers, body-size limit, lines, `/metrics` and the request telemetry), adds its routes (the
direct ones first, `_direct`; health, `_health`), and a lifespan that sets up the service's
tracing, opens one Mongo client and one bus connection for the process (`_connections`),
builds the service's typed runtime (its own collaborators included), subscribes every event
handler to it (`_handlers`) and runs the outbox relay. Tests pass their settings and an
in-memory Mongo and bus instead of URLs.

The spec and the factory share a module because each needs the other (`ServiceSpec.create_app`
is the factory; the factory reads the spec): apart, they would import each other.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic

from fastapi import APIRouter, FastAPI

from ticketing_common.bus import Bus, Dependency
from ticketing_common.events import Subject
from ticketing_common.limits import Line
from ticketing_common.logs import configure_logging
from ticketing_common.mongo import CommandCounter, Database, IndexSpec
from ticketing_common.outbox import Outbox, OutboxRelay
from ticketing_common.service._app import new_app
from ticketing_common.service._connections import jetstream_bus, open_database
from ticketing_common.service._direct import DirectEndpoint, direct_routes
from ticketing_common.service._handlers import Handlers
from ticketing_common.service._health import ReadinessCheck, debug_router, health_router
from ticketing_common.service._heap import freeze_heap
from ticketing_common.service._runtime import OpenRuntime, Runtime, RuntimeT, SettingsT
from ticketing_common.telemetry import tracing
from ticketing_common.telemetry.scrape import ScrapeHook, metrics_router

log = logging.getLogger("ticketing.service")


@dataclass(frozen=True)
class ServiceSpec(Generic[SettingsT, RuntimeT]):
    """What a service is made of; `create_app` makes its app."""

    name: str
    routers: list[APIRouter]
    # None: the shared runtime as it is (an app with nothing of its own, as in common's tests).
    open_runtime: OpenRuntime[SettingsT, RuntimeT] | None = None
    # Its event handlers, each registered from its payload class with what it needs
    # (`Handlers(handles(TicketCreated, on_ticket_created), ...)`).
    handlers: Handlers[RuntimeT] = field(default_factory=Handlers)
    indexes: list[IndexSpec] = field(default_factory=list)
    outbox_collections: list[str] = field(default_factory=list)
    # Expiration keeps its state in Redis and has no Mongo database.
    uses_mongo: bool = True
    readiness_checks: list[ReadinessCheck[RuntimeT]] = field(default_factory=list)
    # Read the service's own state into its gauges before each scrape of /metrics.
    scrape_hooks: list[ScrapeHook[RuntimeT]] = field(default_factory=list)
    # The service's cached settings factory, read when an app is made without settings.
    settings: Callable[[], SettingsT] | None = None
    # Endpoints of `routers` served directly (see `_direct`): the hottest reads only.
    direct: list[DirectEndpoint] = field(default_factory=list)
    # Paths served in lines of their own (`limits.Line`), sized from the settings: the slow ones
    # (auth's password hashing), so that the cheap requests never queue behind them.
    lines: Callable[[SettingsT], Sequence[Line]] | None = None

    def __post_init__(self) -> None:
        # A plain {subject: handler} table would file a handler under a subject written beside
        # it, unchecked: only `Handlers` checks each against its payload class.
        if not isinstance(self.handlers, Handlers):
            raise TypeError(
                f"{self.name}: handlers must be a Handlers table of handles(...), "
                f"not {type(self.handlers).__name__}"
            )

    def handler_needs(self, subject: Subject) -> frozenset[str]:
        """Everything the handler of `subject` needs: the service's own Mongo, if it has one,
        and what its subscription declares (`handles(..., needs=...)`)."""
        own = frozenset({Dependency.MONGO}) if self.uses_mongo else frozenset()
        return own | self.handlers.needs(subject)

    @property
    def prefix(self) -> str:
        """The HTTP prefix of the service's routes (`/api/tickets`); "" for none (expiration)."""
        prefixes = {router.prefix for router in self.routers}
        if len(prefixes) > 1:
            raise ValueError(f"{self.name}: routers under several prefixes {sorted(prefixes)}")
        return prefixes.pop() if prefixes else ""

    def create_app(
        self, settings: SettingsT | None = None, *, mongo: Any = None, bus: Bus | None = None
    ) -> FastAPI:
        """The service's ASGI app (`uvicorn --factory <service>.main:create_app`); tests pass
        their settings, an in-memory Mongo client and bus."""
        if settings is None:
            if self.settings is None:
                raise TypeError(f"{self.name}: no settings given and no settings factory")
            settings = self.settings()
        return create_service_app(self, settings, mongo=mongo, bus=bus)


def create_service_app(
    spec: ServiceSpec[SettingsT, RuntimeT],
    settings: SettingsT,
    *,
    mongo: Any = None,
    bus: Bus | None = None,
) -> FastAPI:
    """The app of `spec` with `settings`; `mongo` and `bus` (tests) replace the ones the
    lifespan would connect to."""
    configure_logging(spec.name, settings.log_level, access_log=settings.access_log)
    counter = CommandCounter() if settings.mongo_count_commands else None
    lifespan = partial(
        _lifespan, spec=spec, settings=settings, mongo=mongo, bus=bus, counter=counter
    )
    app = new_app(
        spec.name,
        spec.prefix,
        settings,
        lifespan=lifespan,
        lines=spec.lines(settings) if spec.lines is not None else (),
    )
    # Routes are matched in order: the direct ones first (ahead of the docs), then the API's,
    # the probes and the scrape after them.
    app.router.routes[:0] = direct_routes(spec.routers, spec.direct)
    for router in spec.routers:
        app.include_router(router)
    app.include_router(health_router(spec.readiness_checks))
    app.include_router(metrics_router(spec.scrape_hooks))
    if counter is not None:
        app.include_router(debug_router(counter))
    return app


@contextlib.asynccontextmanager
async def _lifespan(
    app: FastAPI,
    *,
    spec: ServiceSpec[SettingsT, RuntimeT],
    settings: SettingsT,
    mongo: Any,
    bus: Bus | None,
    counter: CommandCounter | None,
) -> AsyncIterator[None]:
    """The process from start to stop: tracing, Mongo, the bus, the runtime, the relay."""
    client: Any = None  # an AsyncMongoClient, or the in-memory one tests pass
    db: Database | None = None
    traces = tracing.configure(spec.name, settings)
    if spec.uses_mongo:
        client, db = await open_database(
            spec.name,
            settings,
            mongo=mongo,
            counter=counter,
            indexes=spec.indexes,
            outbox_collections=spec.outbox_collections,
        )
    the_bus: Bus = bus if bus is not None else jetstream_bus(spec.name, settings)
    relay = OutboxRelay(
        the_bus, db, spec.outbox_collections, sweep_seconds=settings.outbox_sweep_seconds
    )
    shared = Runtime(settings=settings, db=db, bus=the_bus, relay=relay, outbox=Outbox(db, relay))
    try:
        async with _open_runtime(spec, shared) as runtime:
            app.state.runtime = runtime
            await _start(spec, runtime, bus=the_bus, relay=relay, settings=settings)
            try:
                yield
            finally:
                await relay.close()
                await the_bus.close()
    finally:
        if mongo is None and client is not None:
            await client.close()
        traces.shutdown()


def _open_runtime(
    spec: ServiceSpec[SettingsT, RuntimeT], shared: Runtime[SettingsT]
) -> AbstractAsyncContextManager[Any]:
    """The service's own runtime, built from the shared one (or the shared one as it is)."""
    if spec.open_runtime is not None:
        return spec.open_runtime(shared)
    return contextlib.nullcontext(shared)


async def _start(
    spec: ServiceSpec[SettingsT, RuntimeT],
    runtime: RuntimeT,
    *,
    bus: Bus,
    relay: OutboxRelay,
    settings: SettingsT,
) -> None:
    """Subscribe every handler, bound to the runtime, then start consuming and relaying."""
    for subscription in spec.handlers.subscriptions:
        bus.subscribe(
            subscription.subject,
            partial(subscription.handler, runtime),
            needs=spec.handler_needs(subscription.subject),
        )
    await bus.start()
    relay.start()
    if settings.environment != "test":
        freeze_heap()
    log.info("service started", extra={"db": settings.mongo_db})
