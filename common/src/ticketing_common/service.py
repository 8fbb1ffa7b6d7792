"""The one way a Ticketing service is assembled.

`create_service_app` builds the FastAPI app of any service from a `ServiceSpec`: error handlers,
body-size limit, health routes, `/metrics` and the request telemetry (`telemetry`), and a
lifespan that sets up the service's tracing, opens one Mongo client and one bus
connection for the process, creates indexes, builds the service's typed runtime (its own
collaborators included), binds every event handler to it and runs the outbox relay. Tests pass
their settings and an in-memory Mongo and bus instead of URLs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeAlias, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ticketing_common.bus import Bus, Dependency, JetStreamBus
from ticketing_common.errors import (
    ErrorBody,
    error_body,
    error_responses,
    install_error_handlers,
)
from ticketing_common.events import Event, Subject
from ticketing_common.limits import BodySizeLimit, ConcurrencyLimit, Line
from ticketing_common.logs import configure_logging
from ticketing_common.mongo import CommandCounter, Database, IndexSpec, connect, ensure_indexes
from ticketing_common.outbox import PENDING, Outbox, OutboxRelay
from ticketing_common.settings import ServiceSettings
from ticketing_common.telemetry import tracing
from ticketing_common.telemetry.http import METRICS_PATH, NOT_TRACED, HttpTelemetry
from ticketing_common.telemetry.scrape import ScrapeHook, metrics_router

log = logging.getLogger("ticketing.service")

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
RuntimeT = TypeVar("RuntimeT", bound="Runtime[Any]")


@dataclass(frozen=True)
class Runtime(Generic[SettingsT]):
    """What every service's process shares, created once in the lifespan.

    Each service subclasses it (`<service>/runtime.py`) with its settings type and adds its own
    collaborators as typed fields; routes get it through the service's `RuntimeDep`, event
    handlers as their first argument.
    """

    settings: SettingsT
    # The service's database (None for expiration, which has none; a service with one has a
    # `MongoRuntime`, where it is never None).
    db: Database | None
    bus: Bus
    relay: OutboxRelay
    # Writes that carry events go through it, and are published as part of the write.
    outbox: Outbox

    def shared(self) -> dict[str, Any]:
        """These fields, for a service's runtime built from them: `X(**base.shared(), ...)`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Runtime)}


@dataclass(frozen=True)
class MongoRuntime(Runtime[SettingsT]):
    """The runtime of a service with a database (`ServiceSpec.uses_mongo`): `db` is there.

    Each repository types the collections it owns (see `ticketing_common.mongo.collection`).
    """

    db: Database

    def __post_init__(self) -> None:
        if self.db is None:
            raise ValueError(f"{type(self).__name__} needs a database")


# Every event handler of every service: the service's runtime and the event, nothing else.
EventHandler: TypeAlias = Callable[[RuntimeT, Event[Any]], Awaitable[None]]
# Builds the service's runtime from the shared one, and closes its collaborators on exit.
OpenRuntime: TypeAlias = Callable[[Runtime[SettingsT]], AbstractAsyncContextManager[RuntimeT]]
# An endpoint that takes the request and answers it, with nothing for FastAPI to solve.
DirectEndpoint: TypeAlias = Callable[[Request], Awaitable[Response]]
# A readiness check: returns a problem ("redis: down") or None when fine.
ReadinessCheck: TypeAlias = Callable[[RuntimeT], Awaitable[str | None]]


@dataclass(frozen=True)
class ServiceSpec(Generic[SettingsT, RuntimeT]):
    name: str
    routers: list[APIRouter]
    # None: the shared runtime as it is (an app with nothing of its own, as in common's tests).
    open_runtime: OpenRuntime[SettingsT, RuntimeT] | None = None
    handlers: Mapping[Subject, EventHandler[RuntimeT]] = field(default_factory=dict)
    # What a subject's handler needs besides the bus and the service's own Mongo (which every
    # handler of a service that `uses_mongo` needs): a dependency down holds only the consumers
    # that need it, so Stripe failing a capture does not stop payments learning of new orders.
    needs: Mapping[Subject, frozenset[Dependency]] = field(default_factory=dict)
    indexes: list[IndexSpec] = field(default_factory=list)
    outbox_collections: list[str] = field(default_factory=list)
    # Expiration keeps its state in Redis and has no Mongo database.
    uses_mongo: bool = True
    readiness_checks: list[ReadinessCheck[RuntimeT]] = field(default_factory=list)
    # Read the service's own state into its gauges before each scrape of /metrics.
    scrape_hooks: list[ScrapeHook[RuntimeT]] = field(default_factory=list)
    # The service's cached settings factory, read when an app is made without settings.
    settings: Callable[[], SettingsT] | None = None
    # Endpoints of `routers` served directly (see `direct_routes`): the hottest reads only.
    direct: list[DirectEndpoint] = field(default_factory=list)
    # Paths served in lines of their own (`limits.Line`), sized from the settings: the slow ones
    # (auth's password hashing), so that the cheap requests never queue behind them.
    lines: Callable[[SettingsT], Sequence[Line]] | None = None

    def __post_init__(self) -> None:
        if unknown := set(self.needs) - set(self.handlers):
            raise ValueError(
                f"{self.name}: needs declared for subjects it does not handle: {unknown}"
            )

    def handler_needs(self, subject: Subject) -> frozenset[str]:
        """Everything the handler of `subject` needs (see `needs`)."""
        own = frozenset({Dependency.MONGO}) if self.uses_mongo else frozenset()
        return own | self.needs.get(subject, frozenset())

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


def runtime_of(kind: type[RuntimeT]) -> Callable[[Request], Awaitable[RuntimeT]]:
    """The dependency that hands a route its service's runtime, typed as `kind`. Async: FastAPI
    runs a plain function dependency in its thread pool, a thread hop on every request (it was
    the largest cost of a cheap request)."""

    async def get_runtime(request: Request) -> RuntimeT:
        runtime: RuntimeT = request.app.state.runtime
        return runtime

    return get_runtime


class DirectRoute(Route):
    """A plain Starlette route that puts itself in the scope, as FastAPI's routes do: FastAPI's
    router does not for a route of Starlette's, and the metrics and spans name each request by
    its route's template."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await super().handle(scope, receive, send)


def direct_routes(routers: list[APIRouter], endpoints: list[DirectEndpoint]) -> list[Route]:
    """Plain Starlette routes for `endpoints`, at the path and methods their router declares.

    FastAPI's own handling of a request (the nested routers' matching, solving dependencies,
    validating and serializing the answer) costs three times a bare Starlette route: for the
    read every page of the web client makes (auth's currentuser), more than all the rest of
    it. Such an endpoint takes only the request and returns its response; served from a route
    matched ahead of the routers, it keeps its declaration in the router, so the OpenAPI
    document (and the fuzzing that checks answers against it) describes what serves it.
    """
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


def freeze_heap() -> None:
    """Take what start-up made (modules, models, the app, its clients) out of the garbage
    collector's sight for the life of the process.

    Most of a service's heap is made at start-up and lives as long as it does, yet every full
    collection walked all of it: under load one came every few seconds in each service and
    stopped its event loop for 35-100 ms (`make bench`, 50 buyers: gc callbacks in orders and
    tickets), which is how an event waited in the tail of propagation. Garbage made later is
    collected as before. Not in tests, which start many apps in one process: what they freeze
    would stay for the whole run.
    """
    gc.collect()
    gc.freeze()


def _health_router(spec: ServiceSpec[Any, RuntimeT]) -> APIRouter:
    # Operations, not the API: left out of the OpenAPI document (and not routed by the gateway).
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
        for check in spec.readiness_checks:
            problem = await check(runtime)
            if problem:
                problems.append(problem)
        if problems:
            return JSONResponse(error_body("Not ready: " + ", ".join(problems)), status_code=503)
        if not await runtime.bus.ready():
            return JSONResponse({"status": "ready", "degraded": ["nats: not connected"]})
        return JSONResponse({"status": "ready"})

    return router


def _debug_router(counter: CommandCounter) -> APIRouter:
    """Only with MONGO_COUNT_COMMANDS (`make bench`): what this process has asked Mongo."""
    router = APIRouter(tags=["debug"], include_in_schema=False)

    @router.get("/debug/mongo-commands")
    async def mongo_commands() -> dict[str, int]:
        """Commands sent to Mongo since start, by command name."""
        return counter.snapshot()

    return router


def create_service_app(
    spec: ServiceSpec[SettingsT, RuntimeT],
    settings: SettingsT,
    *,
    mongo: Any = None,
    bus: Bus | None = None,
) -> FastAPI:
    configure_logging(spec.name, settings.log_level, access_log=settings.access_log)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: Any = None  # an AsyncMongoClient, or the in-memory one tests pass
        db: Database | None = None
        traces = tracing.configure(spec.name, settings)
        if spec.uses_mongo:
            client = (
                mongo
                if mongo is not None
                else connect(
                    settings.mongo_url,
                    app_name=spec.name,
                    timeout=settings.mongo_timeout_seconds,
                    listener=counter,
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
                concurrency=settings.nats_concurrency,
                stream_replicas=settings.nats_stream_replicas,
                stream_max_bytes=settings.nats_stream_max_bytes,
                # The service itself: it subscribes to its entry of the consumers registry.
                contract=True,
            )
        )
        relay = OutboxRelay(
            the_bus, db, spec.outbox_collections, sweep_seconds=settings.outbox_sweep_seconds
        )
        shared = Runtime(
            settings=settings, db=db, bus=the_bus, relay=relay, outbox=Outbox(db, relay)
        )
        opened: AbstractAsyncContextManager[Any] = (
            spec.open_runtime(shared)
            if spec.open_runtime is not None
            else contextlib.nullcontext(shared)
        )
        try:
            async with opened as runtime:
                app.state.runtime = runtime
                for subject, handler in spec.handlers.items():
                    the_bus.subscribe(
                        subject, partial(handler, runtime), needs=spec.handler_needs(subject)
                    )
                await the_bus.start()
                relay.start()
                if settings.environment != "test":
                    freeze_heap()
                log.info("service started", extra={"db": settings.mongo_db})
                try:
                    yield
                finally:
                    await relay.close()
                    await the_bus.close()
        finally:
            if mongo is None and client is not None:
                await client.close()
            traces.shutdown()

    counter = CommandCounter() if settings.mongo_count_commands else None
    # The documentation under the service's own prefix, so the gateway and the Ingress, which
    # route by prefix, reach it: /api/tickets/docs and /api/tickets/openapi.json.
    prefix = spec.prefix
    app = FastAPI(
        title=f"ticketing-{spec.name}",
        lifespan=lifespan,
        docs_url=f"{prefix}/docs",
        swagger_ui_oauth2_redirect_url=f"{prefix}/docs/oauth2-redirect",
        redoc_url=None,
        openapi_url=f"{prefix}/openapi.json",
        # Ours is `telemetry.http.HttpTelemetry`; FastAPI's own would switch itself on (spans
        # for every dependency) the day anything sets a global tracer provider, and checks
        # whether it should on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Outside the body limit (a request waiting for its turn has read nothing), inside the
    # telemetry (its time in line counts, and a refusal is counted).
    app.add_middleware(
        ConcurrencyLimit,
        limit=settings.http_concurrency,
        queue=settings.http_queue,
        exempt=(*NOT_TRACED, METRICS_PATH),
        lines=spec.lines(settings) if spec.lines is not None else (),
    )
    # Around everything but the proxy headers below: it sees every answer, 500s included.
    app.add_middleware(HttpTelemetry, service=spec.name)
    install_error_handlers(app)
    # Outermost: the client's address is known before anything runs (and is logged).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.openapi = partial(openapi_document, app)  # type: ignore[method-assign]
    # Routes are matched in order: the direct ones first (ahead of the docs), then the API's,
    # the probes and the scrape after them.
    app.router.routes[:0] = direct_routes(spec.routers, spec.direct)
    for router in spec.routers:
        app.include_router(router)
    app.include_router(_health_router(spec))
    app.include_router(metrics_router(spec.scrape_hooks))
    if counter is not None:
        app.include_router(_debug_router(counter))
    return app


def _error_response(code: int, ref: dict[str, str]) -> dict[str, Any]:
    """The documented answer `code` in the error shape, as `error_responses` describes it
    (with its Retry-After where one is sent), its body the document's `ErrorBody`."""
    response = {k: v for k, v in error_responses(code)[code].items() if k != "model"}
    return {**response, "content": {"application/json": {"schema": ref}}}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the errors it really answers.

    FastAPI documents a 422 with its own body wherever a route takes parameters or a body; ours
    answer 400 in the common shape (`errors.install_error_handlers`). So: the 422 becomes a 400
    where input is validated (a body or a query), and goes where only path ids are (a malformed
    id is a 404, which such a route declares); a route with a body can also be refused with a
    413 (`limits.BodySizeLimit`); any may find the line full, a 503 (`limits.ConcurrencyLimit`).
    The other statuses each route declares itself
    (`errors.error_responses`).
    """
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    # The error body and its item, as FastAPI names them when a route declares them.
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components.setdefault(ErrorBody.__name__, error_schema)
    ref = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            # Any request may find the line full (`limits.ConcurrencyLimit`).
            responses.setdefault("503", _error_response(503, ref))
            if responses.pop("422", None) is None:
                continue
            validates = "requestBody" in operation or any(
                p.get("in") != "path" for p in operation.get("parameters", [])
            )
            added = [400] if validates else []
            if "requestBody" in operation:
                added.append(413)
            for code in added:
                responses.setdefault(str(code), _error_response(code, ref))
    app.openapi_schema = document
    return document
