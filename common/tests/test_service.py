"""The service factory: health, readiness, the bus it builds, the handlers it subscribes, its
documents, the direct routes, the heap it freezes."""

import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ticketing_common.auth import CurrentUser
from ticketing_common.bus import Dependency
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.errors import error_responses
from ticketing_common.events import Event, EventData, Subject, TicketCreated, TicketUpdated
from ticketing_common.service import Handlers, ServiceSpec, create_service_app, handles
from ticketing_common.service._direct import direct_routes
from ticketing_common.settings import ServiceSettings
from ticketing_testing.apps import TEST_JWT_KEY, running
from ticketing_testing.servers import free_port


async def test_healthz_is_alive(client: httpx.AsyncClient) -> None:
    res = await client.get("/healthz")
    assert (res.status_code, res.json()) == (200, {"status": "ok"})


async def test_readyz_reports_nats_down_but_stays_ready(
    client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    """Readiness is about the pod: with NATS down its writes wait in the outbox and its reads
    are served, so it stays in its Service (issue 21), saying the bus is down."""
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    bus.broker.available = False
    res = await client.get("/readyz")
    assert res.status_code == 200
    assert res.json() == {"status": "ready", "degraded": ["nats: not connected"]}


async def test_the_bus_is_built_with_the_retry_settings(mongo: Any) -> None:
    from ticketing_common.bus import JetStreamBus

    settings = ServiceSettings(
        service_name="things",
        environment="test",
        jwt_key=TEST_JWT_KEY,
        nats_url=f"nats://127.0.0.1:{free_port()}",  # nobody there: the bus keeps trying
        nats_ack_wait_seconds=12,
        nats_max_deliver=7,
        nats_retry_delay_seconds=0.25,
        nats_retry_horizon_seconds=600,
    )
    app = create_service_app(ServiceSpec(name="things", routers=[]), settings, mongo=mongo)
    async with running(app):
        bus = app.state.runtime.bus
        assert isinstance(bus, JetStreamBus)
        assert (bus.ack_wait, bus.policy.max_deliver, bus.policy.retry_delay) == (12, 7, 0.25)
        assert bus.policy.horizon == 600


async def test_mongo_commands_are_counted_only_when_asked(mongo: Any) -> None:
    def app_with(count: bool) -> Any:
        settings = ServiceSettings(
            service_name="things",
            environment="test",
            jwt_key=TEST_JWT_KEY,
            mongo_count_commands=count,
        )
        return create_service_app(
            ServiceSpec(name="things", routers=[]), settings, mongo=mongo, bus=InMemoryBus("things")
        )

    async with running(app_with(False)) as client:
        assert (await client.get("/debug/mongo-commands")).status_code == 404
    async with running(app_with(True)) as client:
        res = await client.get("/debug/mongo-commands")
        assert res.status_code == 200
        assert isinstance(res.json(), dict)


# --- event handlers, registered from their payload class -------------------------------------


async def on_created(runtime: Any, event: Event[TicketCreated]) -> None:
    return None


async def on_updated(runtime: Any, event: Event[TicketUpdated]) -> None:
    return None


def test_a_handler_is_filed_under_its_payloads_own_subject() -> None:
    handlers = Handlers(
        handles(TicketCreated, on_created),
        handles(TicketUpdated, on_updated, needs={Dependency.STRIPE}),
    )
    assert dict(handlers) == {
        Subject.TICKET_CREATED: on_created,
        Subject.TICKET_UPDATED: on_updated,
    }
    assert [s.subject for s in handlers.subscriptions] == list(handlers)
    assert handlers.needs(Subject.TICKET_UPDATED) == {"stripe"}
    assert handlers.needs(Subject.TICKET_CREATED) == handlers.needs(Subject.ORDER_CREATED) == set()


def test_a_handler_registered_for_another_payload_fails_at_start_up() -> None:
    # mypy rejects this registration too: `handles` ties the payload class to the handler's
    # Event[...] parameter, and Event[TicketCreated] is not Event[TicketUpdated] ([arg-type]);
    # the ignore below would be reported unused if it stopped rejecting it.
    with pytest.raises(TypeError, match=r"on_created is registered for ticket:updated"):
        Handlers(handles(TicketUpdated, on_created))  # type: ignore[arg-type]


def test_a_handler_typed_looser_than_its_payload_fails_at_start_up() -> None:
    """What mypy lets through (a handler typed with `Any`, or not at all, or passed as any
    callable) is refused when the handlers are registered, before any event arrives."""

    async def of_anything(runtime: Any, event: Event[Any]) -> None:
        return None

    async def of_any_payload(runtime: Any, event: Event[EventData]) -> None:
        return None

    async def not_annotated(runtime, event):  # type: ignore[no-untyped-def]
        return None

    loose_ones: list[Callable[..., Awaitable[None]]] = [of_anything, of_any_payload, not_annotated]
    for loose in loose_ones:
        with pytest.raises(TypeError, match=f"{loose.__name__} is registered for ticket:created"):
            Handlers(handles(TicketCreated, loose))


def test_two_handlers_for_one_subject_fail_at_start_up() -> None:
    async def again(runtime: Any, event: Event[TicketCreated]) -> None:
        return None

    with pytest.raises(ValueError, match="two handlers for ticket:created"):
        Handlers(handles(TicketCreated, on_created), handles(TicketCreated, again))


def test_a_plain_table_of_handlers_by_subject_fails_at_start_up() -> None:
    """The old `{Subject: handler}` table filed a handler under a subject written beside it,
    unchecked."""
    with pytest.raises(TypeError, match="handlers must be a Handlers table"):
        ServiceSpec(
            name="things",
            routers=[],
            handlers={Subject.TICKET_UPDATED: on_created},  # type: ignore[arg-type]
        )


async def test_each_handler_is_subscribed_under_its_subject_with_its_needs(mongo: Any) -> None:
    seen: list[str] = []

    async def record(runtime: Any, event: Event[TicketUpdated]) -> None:
        seen.append(event.data.title)

    bus = InMemoryBus("things")
    spec: ServiceSpec[Any, Any] = ServiceSpec(
        name="things",
        routers=[],
        handlers=Handlers(handles(TicketUpdated, record, needs={Dependency.STRIPE})),
    )
    assert spec.handler_needs(Subject.TICKET_UPDATED) == {"mongo", "stripe"}
    settings = ServiceSettings(service_name="things", environment="test", jwt_key=TEST_JWT_KEY)
    async with running(create_service_app(spec, settings, mongo=mongo, bus=bus)):
        data = TicketUpdated(id="t1", version=1, title="seen", price=1.0, user_id="u")
        await bus.publish(Event[TicketUpdated](subject=data.subject, data=data))
        await bus.drain()
    assert seen == ["seen"]


# --- documentation ------------------------------------------------------------------------------


async def test_the_docs_are_served_under_the_services_prefix(client: httpx.AsyncClient) -> None:
    """So that the gateway and the Ingress, which route by prefix, reach them."""
    docs = await client.get("/api/things/docs")
    assert docs.status_code == 200
    assert "/api/things/openapi.json" in docs.text
    document = await client.get("/api/things/openapi.json")
    assert document.json()["info"]["title"] == "ticketing-things"
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert (await client.get(path)).status_code == 404


async def test_the_document_lists_the_errors_the_api_answers_and_no_422(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/api/things/openapi.json")).json()
    text = str(document)
    assert "422" not in text
    assert "HTTPValidationError" not in text
    assert "/healthz" not in document["paths"]
    error = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    }
    create = document["paths"]["/api/things"]["post"]["responses"]
    # A body: validated (400), and refused over the size limit (413).
    assert {"400", "413"} <= create.keys()
    assert create["400"] | error == create["400"]
    paged = document["paths"]["/api/things/paged"]["get"]["responses"]
    assert set(paged) == {"200", "400", "503"}  # a query: validated, no body
    # Any request may find the line full.
    boom = document["paths"]["/api/things/boom"]["get"]["responses"]
    assert set(boom) == {"200", "503"}
    assert boom["503"] | error == boom["503"]
    assert boom["503"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["errors"]
    assert schemas["ErrorItem"]["required"] == ["message"]
    assert schemas["ErrorItem"]["additionalProperties"] is False


def test_declared_error_responses_are_documented_with_retry_after_where_it_is_sent() -> None:
    router = APIRouter(prefix="/api/gadgets")

    @router.get("/{gadget_id}", responses=error_responses(401, 404, 429))
    async def show(gadget_id: str) -> dict[str, str]:
        return {}

    settings = ServiceSettings(service_name="gadgets", environment="test", jwt_key=TEST_JWT_KEY)
    app = create_service_app(ServiceSpec(name="gadgets", routers=[router]), settings)
    responses = app.openapi()["paths"]["/api/gadgets/{gadget_id}"]["get"]["responses"]
    # A path id only: not validated (a malformed id is the route's 404), so no 400.
    assert set(responses) == {"200", "401", "404", "429", "503"}
    assert responses["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert "Retry-After" not in responses["404"].get("headers", {})
    # The documentation page is the service's own (`_apidocs`; served in
    # client/tests/test_apidocs_browser.py), not FastAPI's.
    assert app.docs_url is None


def test_a_service_under_two_prefixes_is_refused() -> None:
    spec: ServiceSpec[Any, Any] = ServiceSpec(
        name="odd", routers=[APIRouter(prefix="/api/a"), APIRouter(prefix="/api/b")]
    )
    with pytest.raises(ValueError, match="several prefixes"):
        _ = spec.prefix


def _gadgets() -> tuple[APIRouter, Any, Any]:
    router = APIRouter(prefix="/api/gadgets")

    @router.get("/count", responses={200: {"description": "How many"}})
    async def count(request: Request) -> Response:
        """How many gadgets, answered by the route that served it."""
        route = request.scope["route"]
        return JSONResponse({"count": 3, "route": type(route).__name__})

    @router.get("/mine")
    async def mine(user: CurrentUser) -> dict[str, str]:
        """A route with a dependency."""
        return {"id": user.id}

    return router, count, mine


async def test_a_direct_endpoint_is_served_ahead_of_fastapi_as_its_router_declares(
    mongo: Any, bus: InMemoryBus
) -> None:
    router, count, _ = _gadgets()
    spec: ServiceSpec[Any, Any] = ServiceSpec(name="gadgets", routers=[router], direct=[count])
    settings = ServiceSettings(service_name="gadgets", environment="test", jwt_key=TEST_JWT_KEY)
    app = create_service_app(spec, settings, mongo=mongo, bus=bus)
    async with running(app) as client:
        res = await client.get("/api/gadgets/count")
        # A Starlette route served it, not FastAPI's APIRoute; its metrics name its template.
        assert res.json() == {"count": 3, "route": "DirectRoute"}
        assert (await client.post("/api/gadgets/count")).status_code == 405
        scrape = (await client.get("/metrics")).text
        assert 'route="/api/gadgets/count"' in scrape
        document = (await client.get("/api/gadgets/openapi.json")).json()
        assert document["paths"]["/api/gadgets/count"]["get"]["summary"] == "Count"


def test_only_an_endpoint_declared_once_that_takes_the_request_alone_is_served_directly() -> None:
    router, count, mine = _gadgets()
    with pytest.raises(ValueError, match="takes more than the request"):
        direct_routes([router], [mine])
    with pytest.raises(ValueError, match="declared 0 times"):
        direct_routes([APIRouter()], [count])
    assert [r.path for r in direct_routes([router], [count])] == ["/api/gadgets/count"]


# A service process on its own: its start-up heap frozen, or not in tests. In a child process,
# because what one freezes stays for the life of the process (this one runs every test).
_STARTS_A_SERVICE = """
import asyncio, gc, sys
from mongomock_motor import AsyncMongoMockClient
from ticketing_common.bus import Dependency
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.service import ServiceSpec, create_service_app
from ticketing_common.settings import ServiceSettings
from ticketing_testing.apps import TEST_JWT_KEY, running

async def main() -> None:
    settings = ServiceSettings(
        service_name="things", environment=sys.argv[1], jwt_key=TEST_JWT_KEY
    )
    app = create_service_app(
        ServiceSpec(name="things", routers=[]), settings,
        mongo=AsyncMongoMockClient(), bus=InMemoryBus("things"),
    )
    before = gc.get_freeze_count()
    async with running(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        print(before, gc.get_freeze_count())

asyncio.run(main())
"""


@pytest.mark.parametrize(("environment", "frozen"), [("production", True), ("test", False)])
def test_a_service_freezes_its_start_up_heap_out_of_the_collectors_sight(
    environment: str, frozen: bool
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _STARTS_A_SERVICE, environment],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, after = (int(n) for n in done.stdout.split()[-2:])
    assert before == 0
    # The modules, the app and its clients: tens of thousands of objects.
    assert (after > 10_000) is frozen
    assert (after == 0) is not frozen
