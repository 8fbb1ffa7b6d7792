"""order:created reserves, order:cancelled releases: once each, in any order, under races."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus import durable_name
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import (
    Event,
    Subject,
    TicketUpdated,
    encode,
)
from ticketing_testing.events import order_cancelled, order_created
from ticketing_testing.waiting import eventually
from ticketing_tickets import listeners, repository
from ticketing_tickets.runtime import TicketsRuntime

SignIn = Callable[..., str]
CreateTicket = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[], Awaitable[None]]
RaceAfterFirstRead = Callable[[Callable[[str], Awaitable[Any]]], Any]
Handle = Callable[[TicketsRuntime, str], Awaitable[None]]
TicketState = tuple[str | None, int]  # the holding order's id, the version
Reservation = tuple[int, str | None]  # a ticket:updated's version and order id


async def deliver_twice(bus: InMemoryBus, event: Event[Any]) -> None:
    """The same event delivered twice, as a redelivery or an outbox re-publish would."""
    await bus.publish(event)
    await bus.publish_raw(event.subject.wire, encode(event), msg_id=f"{event.id}-again")


def updates(bus: InMemoryBus) -> list[TicketUpdated]:
    return [e.data for e in bus.published_on(Subject.TICKET_UPDATED)]


async def state(client: httpx.AsyncClient, ticket_id: str) -> TicketState:
    body = (await client.get(f"/api/tickets/{ticket_id}")).json()
    return body["orderId"], body["version"]


async def reserve(runtime: TicketsRuntime, ticket_id: str, order_id: str = "order-1") -> None:
    """order:created's handler called directly, not through the bus, so that a test can race it."""
    await listeners.reserve(runtime, order_created(order_id, ticket_id=ticket_id).data)


async def release(runtime: TicketsRuntime, ticket_id: str, order_id: str = "order-1") -> None:
    """order:cancelled's handler called directly, as `reserve`."""
    await listeners.release(runtime, order_cancelled(order_id, ticket_id=ticket_id).data)


@pytest.fixture
async def ticket(sign_in: SignIn, create_ticket: CreateTicket) -> dict[str, Any]:
    sign_in()
    return await create_ticket(title="concert", price=19.99)


async def test_order_created_reserves_the_ticket(
    client: httpx.AsyncClient, bus: InMemoryBus, settle: Settle, ticket: dict[str, Any]
) -> None:
    await bus.publish(order_created("order-1", ticket_id=ticket["id"]))
    await settle()
    assert await state(client, ticket["id"]) == ("order-1", 1)
    [update] = updates(bus)
    assert (update.id, update.version, update.order_id) == (ticket["id"], 1, "order-1")
    assert (update.title, update.price, update.user_id) == ("concert", 19.99, ticket["userId"])
    # Acked: nothing left to deliver (settle drained) and nothing dead-lettered.
    assert await bus.dead_letters() == []


async def test_a_reserved_ticket_leaves_the_listing(
    client: httpx.AsyncClient, bus: InMemoryBus, settle: Settle, ticket: dict[str, Any]
) -> None:
    await bus.publish(order_created("order-1", ticket_id=ticket["id"]))
    await settle()
    assert (await client.get("/api/tickets")).json() == []
    await bus.publish(order_cancelled("order-1", ticket_id=ticket["id"]))
    await settle()
    assert [t["id"] for t in (await client.get("/api/tickets")).json()] == [ticket["id"]]


@pytest.mark.parametrize(
    ("cancelled", "after", "events"),
    [
        pytest.param("order-1", (None, 2), [(1, "order-1"), (2, None)], id="its-own-order"),
        pytest.param("order-2", ("order-1", 1), [(1, "order-1")], id="another-order"),
    ],
)
async def test_order_cancelled_releases_the_ticket_of_its_own_order_only(
    client: httpx.AsyncClient,
    bus: InMemoryBus,
    settle: Settle,
    ticket: dict[str, Any],
    cancelled: str,
    after: TicketState,
    events: list[Reservation],
) -> None:
    await bus.publish(order_created("order-1", ticket_id=ticket["id"]))
    await settle()
    await bus.publish(order_cancelled(cancelled, ticket_id=ticket["id"]))
    await settle()
    assert await state(client, ticket["id"]) == after
    assert [(u.version, u.order_id) for u in updates(bus)] == events
    assert await bus.dead_letters() == []


async def test_duplicate_deliveries_change_nothing(
    client: httpx.AsyncClient, bus: InMemoryBus, settle: Settle, ticket: dict[str, Any]
) -> None:
    await deliver_twice(bus, order_created("order-1", ticket_id=ticket["id"]))
    await settle()
    assert await state(client, ticket["id"]) == ("order-1", 1)
    assert len(updates(bus)) == 1

    await deliver_twice(bus, order_cancelled("order-1", ticket_id=ticket["id"]))
    await settle()
    assert await state(client, ticket["id"]) == (None, 2)
    assert len(updates(bus)) == 2
    assert await bus.dead_letters() == []


async def test_a_late_duplicate_of_a_cancelled_order_does_not_reserve_again(
    client: httpx.AsyncClient, bus: InMemoryBus, settle: Settle, ticket: dict[str, Any]
) -> None:
    created = order_created("order-1", ticket_id=ticket["id"])
    await bus.publish(created)
    await settle()
    await bus.publish(order_cancelled("order-1", ticket_id=ticket["id"]))
    await settle()
    await bus.publish_raw(created.subject.wire, encode(created), msg_id="late-redelivery")
    await settle()
    assert await state(client, ticket["id"]) == (None, 2)
    assert len(updates(bus)) == 2


async def test_cancelled_before_created_leaves_the_ticket_free(
    client: httpx.AsyncClient, bus: InMemoryBus, settle: Settle, ticket: dict[str, Any]
) -> None:
    await bus.publish(order_cancelled("order-1", ticket_id=ticket["id"]))
    await settle()
    await bus.publish(order_created("order-1", ticket_id=ticket["id"]))
    await settle()
    assert await state(client, ticket["id"]) == (None, 0)
    assert updates(bus) == []
    assert await bus.dead_letters() == []
    # And the ticket can still be sold to someone else.
    await bus.publish(order_created("order-2", ticket_id=ticket["id"]))
    await settle()
    assert await state(client, ticket["id"]) == ("order-2", 1)


async def test_created_for_a_ticket_held_by_another_order_waits_for_its_release(
    client: httpx.AsyncClient, bus: InMemoryBus, settle: Settle, ticket: dict[str, Any]
) -> None:
    # Plenty of deliveries: this test decides when the release arrives, not the retry budget.
    bus.max_deliver = 1000
    await bus.publish(order_created("order-1", ticket_id=ticket["id"]))
    await settle()
    await bus.publish(order_created("order-2", ticket_id=ticket["id"]))
    consumer = bus.broker.consumers[durable_name("tickets", Subject.ORDER_CREATED)]

    async def deferred() -> bool:
        return any(p.deliveries >= 2 for p in consumer.queue)

    await eventually(deferred)
    assert await state(client, ticket["id"]) == ("order-1", 1)

    await bus.publish(order_cancelled("order-1", ticket_id=ticket["id"]))
    await settle()
    assert await state(client, ticket["id"]) == ("order-2", 3)
    assert [(u.version, u.order_id) for u in updates(bus)] == [
        (1, "order-1"),
        (2, None),
        (3, "order-2"),
    ]
    assert await bus.dead_letters() == []


@pytest.mark.parametrize("ticket_id", ["65f0a1b2c3d4e5f601234567", "not-an-id"])
async def test_an_event_for_an_unknown_ticket_is_dead_lettered(
    client: httpx.AsyncClient,
    bus: InMemoryBus,
    settle: Settle,
    caplog: pytest.LogCaptureFixture,
    ticket_id: str,
) -> None:
    caplog.set_level(logging.ERROR, logger="ticketing.tickets.listeners")
    await bus.publish(order_created("order-1", ticket_id=ticket_id))
    await bus.publish(order_cancelled("order-2", ticket_id=ticket_id))
    await settle()
    dead = await bus.dead_letters()
    assert sorted(d.subject for d in dead) == ["order.cancelled", "order.created"]
    assert all("UnknownTicketError" in d.error and ticket_id in d.error for d in dead)
    assert any(r.message == "order refers to an unknown ticket" for r in caplog.records)


async def test_racing_reserve_and_release_agree_with_their_events(
    client: httpx.AsyncClient,
    runtime: TicketsRuntime,
    create_ticket: CreateTicket,
    sign_in: SignIn,
    bus: InMemoryBus,
    settle: Settle,
) -> None:
    """Whichever of a pair of events lands first, the ticket ends free and its events add up."""
    sign_in()
    tickets = [await create_ticket(title=f"t{i}") for i in range(10)]
    order = {t["id"]: str(ObjectId()) for t in tickets}

    async def pair(ticket_id: str, cancel_first: bool) -> None:
        created = reserve(runtime, ticket_id, order[ticket_id])
        cancelled = release(runtime, ticket_id, order[ticket_id])
        await asyncio.gather(*((cancelled, created) if cancel_first else (created, cancelled)))

    await asyncio.gather(*(pair(t["id"], i % 2 == 0) for i, t in enumerate(tickets)))
    await settle()
    for t in tickets:
        order_id, version = await state(client, t["id"])
        events = [u for u in updates(bus) if u.id == t["id"]]
        assert order_id is None
        assert [u.version for u in events] == list(range(1, version + 1))
        assert version in (0, 2)
        stored = await repository.get_ticket(runtime.db, ticket_id=t["id"])
        assert stored is not None
        assert order[t["id"]] in repository.released_ids(stored)


async def test_an_edit_racing_a_reservation_never_loses_either(
    client: httpx.AsyncClient,
    runtime: TicketsRuntime,
    create_ticket: CreateTicket,
    bus: InMemoryBus,
    settle: Settle,
) -> None:
    ticket = await create_ticket(title="old")
    edit = client.put(f"/api/tickets/{ticket['id']}", json={"title": "new", "price": 5})
    res, _ = await asyncio.gather(edit, reserve(runtime, ticket["id"]))
    await settle()
    body = (await client.get(f"/api/tickets/{ticket['id']}")).json()
    assert body["orderId"] == "order-1"
    if res.status_code == 200:
        assert (body["title"], body["version"]) == ("new", 2)
    else:
        assert res.status_code == 400
        assert (body["title"], body["version"]) == ("old", 1)
    events = updates(bus)
    assert [u.version for u in events] == list(range(1, body["version"] + 1))
    assert (events[-1].title, events[-1].order_id) == (body["title"], "order-1")


@pytest.mark.parametrize(
    ("competing", "handling", "after", "events"),
    [
        pytest.param(
            release, reserve, (None, 0), [], id="a-cancellation-between-read-and-reserve-wins"
        ),
        pytest.param(
            reserve,
            release,
            (None, 2),
            [(1, "order-1"), (2, None)],
            id="a-reservation-between-read-and-cancel-is-released",
        ),
    ],
)
async def test_an_order_event_landing_between_read_and_write_leaves_the_ticket_free(
    client: httpx.AsyncClient,
    runtime: TicketsRuntime,
    ticket: dict[str, Any],
    bus: InMemoryBus,
    settle: Settle,
    race_after_first_read: RaceAfterFirstRead,
    competing: Handle,
    handling: Handle,
    after: TicketState,
    events: list[Reservation],
) -> None:
    raced = race_after_first_read(lambda tid: competing(runtime, tid))
    await handling(runtime, ticket["id"])
    await settle()
    assert raced
    assert await state(client, ticket["id"]) == after
    assert [(u.version, u.order_id) for u in updates(bus)] == events
