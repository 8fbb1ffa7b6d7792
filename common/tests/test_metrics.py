"""Metrics at /metrics: requests by route template, the bus's events, the outbox and the
consumers' lag, read from a running service app."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.errors import NotFoundError
from ticketing_common.events import Event, TicketUpdated, new_event
from ticketing_common.service import Handlers, Runtime, ServiceSpec, create_service_app, handles
from ticketing_common.settings import ServiceSettings
from ticketing_common.telemetry.stripe import operation, outcome_of
from ticketing_testing.apps import TEST_JWT_KEY, running, selling_router
from ticketing_testing.scrapes import names, value
from ticketing_testing.waiting import eventually

THINGS = "things"
router = APIRouter()


@router.get("/api/things/{thing_id}")
async def show(thing_id: str) -> dict[str, str]:
    if thing_id == "missing":
        raise NotFoundError()
    return {"id": thing_id}


class Gate:
    """A handler of ticket:updated that fails on a poison title and otherwise waits to be let
    through."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, runtime: Runtime[Any], event: Event[TicketUpdated]) -> None:
        if event.data.title == "poison":
            raise ValueError("poison")
        await self.open.wait()


@pytest.fixture
def name() -> str:
    return f"svc{uuid.uuid4().hex[:8]}"


@pytest.fixture
def bus(name: str) -> InMemoryBus:
    return InMemoryBus(name, max_deliver=2)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def client(name: str, mongo: Any, bus: InMemoryBus, gate: Gate) -> Any:
    spec: ServiceSpec[ServiceSettings, Runtime[ServiceSettings]] = ServiceSpec(
        name=name,
        routers=[router, selling_router(THINGS)],
        handlers=Handlers(handles(TicketUpdated, gate)),
        outbox_collections=[THINGS],
    )
    settings = ServiceSettings(service_name=name, environment="test", jwt_key=TEST_JWT_KEY)
    async with running(create_service_app(spec, settings, mongo=mongo, bus=bus)) as client:
        yield client


async def scrape(client: httpx.AsyncClient) -> str:
    res = await client.get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/plain")
    return res.text


def updated(title: str = "a", record: str = "t1") -> Event[TicketUpdated]:
    return new_event(TicketUpdated(id=record, version=1, title=title, price=1.0, user_id="u"))


async def test_requests_are_counted_by_route_template_method_and_status(
    client: httpx.AsyncClient, name: str
) -> None:
    for thing in ("a", "b", "missing"):
        await client.get(f"/api/things/{thing}")
    await client.get("/no/such/route")
    text = await scrape(client)
    route = "/api/things/{thing_id}"
    requests = "ticketing_http_requests_total"
    assert value(text, requests, service=name, method="GET", route=route, status="200") == 2
    assert value(text, requests, service=name, route=route, status="404") == 1
    assert value(text, requests, service=name, route="unmatched", status="404") == 1
    latency = "ticketing_http_request_duration_seconds_count"
    assert value(text, latency, service=name, route=route) == 3
    # The scrape itself is not counted, and no raw path becomes a label.
    assert value(text, requests, service=name, route="/metrics") == 0
    assert "/api/things/a" not in text


async def test_events_published_consumed_redelivered_and_dead_lettered(
    client: httpx.AsyncClient, bus: InMemoryBus, name: str
) -> None:
    await bus.publish(updated())
    await bus.publish(updated("poison"))
    await eventually(lambda: len(bus.broker.dead) == 1)
    await bus.drain()
    text = await scrape(client)
    consumer = f"{name}-ticket-updated"
    labels = {"service": name, "consumer": consumer, "subject": "ticket.updated"}
    assert value(text, "ticketing_events_published_total", service=name) == 2
    assert value(text, "ticketing_events_consumed_total", **labels, outcome="ack") == 1
    # The poison: one failed delivery offered again, then dead-lettered on the second.
    assert value(text, "ticketing_events_consumed_total", **labels, outcome="nak") == 1
    assert value(text, "ticketing_events_consumed_total", **labels, outcome="dead") == 1
    assert value(text, "ticketing_events_redelivered_total", **labels) == 1
    assert value(text, "ticketing_events_dead_lettered_total", **labels) == 1
    handled = "ticketing_event_handling_duration_seconds_count"
    assert value(text, handled, service=name, consumer=consumer) == 3


async def test_the_outbox_backlog_and_its_age_while_the_bus_is_down(
    client: httpx.AsyncClient, bus: InMemoryBus, name: str
) -> None:
    pending, age = (
        "ticketing_outbox_pending_documents",
        "ticketing_outbox_oldest_pending_age_seconds",
    )
    bus.broker.available = False
    for _ in range(2):
        assert (await client.post("/api/things")).status_code == 201

    async def aged() -> str | None:
        text = await scrape(client)
        return text if value(text, age, service=name, collection=THINGS) >= 0.05 else None

    text = await eventually(aged)
    assert value(text, pending, service=name, collection=THINGS) == 2
    bus.broker.available = True

    async def drained() -> bool:
        text = await scrape(client)
        return value(text, pending, service=name, collection=THINGS) == 0

    await eventually(drained)
    assert value(await scrape(client), age, service=name, collection=THINGS) == 0


async def test_the_consumer_lag_is_what_waits_and_what_is_in_hand(
    client: httpx.AsyncClient, bus: InMemoryBus, gate: Gate, name: str
) -> None:
    consumer = f"{name}-ticket-updated"
    gate.open.clear()
    # Two more records than the consumer handles at once: those two wait on the server.
    for n in range(bus.concurrency + 2):
        await bus.publish(updated(record=f"t{n}"))

    async def all_lanes_busy() -> str | None:
        text = await scrape(client)
        in_hand = value(text, "ticketing_consumer_ack_pending_messages", consumer=consumer)
        return text if in_hand == bus.concurrency else None

    text = await eventually(all_lanes_busy)
    assert value(text, "ticketing_consumer_pending_messages", service=name, consumer=consumer) == 2
    gate.open.set()
    await bus.drain()
    text = await scrape(client)
    assert value(text, "ticketing_consumer_pending_messages", consumer=consumer) == 0
    assert value(text, "ticketing_consumer_ack_pending_messages", consumer=consumer) == 0


async def test_a_failing_scrape_hook_does_not_fail_the_scrape(
    client: httpx.AsyncClient, bus: InMemoryBus, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> dict[str, tuple[int, int]]:
        raise ConnectionError("nats down")

    monkeypatch.setattr(bus, "consumer_lag", broken)
    assert "ticketing_outbox_pending_documents" in names(await scrape(client))


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("post", "http://x/v1/payment_intents", "POST /v1/payment_intents"),
        (
            "post",
            "http://x/v1/payment_intents/pi_3Mt9aB/confirm",
            "POST /v1/payment_intents/{id}/confirm",
        ),
        ("get", "http://x/v1/payment_intents/pi_1?expand=x", "GET /v1/payment_intents/{id}"),
    ],
)
def test_stripe_operations_name_no_ids(method: str, url: str, expected: str) -> None:
    assert operation(method, url) == expected


def test_stripe_outcomes() -> None:
    assert [outcome_of(s) for s in (200, 402, 400, 503, None)] == [
        "ok",
        "declined",
        "refused",
        "error",
        "unreachable",
    ]
