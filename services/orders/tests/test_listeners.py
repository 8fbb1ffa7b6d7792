"""The reference app's orders listener tests, ported, plus ours: duplicates, disorder, races."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI

from ticketing_common.bus import RetryLater
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import (
    EventData,
    ExpirationComplete,
    PaymentCreated,
    PaymentWindowClosed,
    Subject,
    TicketCreated,
    TicketUpdated,
    new_event,
)
from ticketing_common.mongo import Database
from ticketing_orders import listeners
from ticketing_testing.waiting import eventually, published

UserHeaders = Callable[..., dict[str, str]]
TicketFactory = Callable[..., Awaitable[str]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
PostOrder = Callable[..., Awaitable[httpx.Response]]


async def deliver(app: FastAPI, data: EventData) -> None:
    """Hand one event straight to this service's handler, as the bus would."""
    handler = listeners.HANDLERS[data.subject]
    await handler(app.state.runtime, new_event(data))


async def publish(bus: InMemoryBus, *items: EventData) -> None:
    for data in items:
        await bus.publish(new_event(data))
    await bus.drain()


async def no_dead_letters(bus: InMemoryBus) -> None:
    assert await bus.dead_letters() == []


def created(ticket_id: str, title: str = "concert", price: float = 10.0) -> TicketCreated:
    return TicketCreated(id=ticket_id, version=0, title=title, price=price, user_id="seller")


def updated(
    ticket_id: str, version: int, title: str = "", price: float = 10.0, order_id: str | None = None
) -> TicketUpdated:
    return TicketUpdated(
        id=ticket_id,
        version=version,
        title=title or f"v{version}",
        price=price,
        user_id="seller",
        order_id=order_id,
    )


def expired(order_id: str) -> PaymentWindowClosed:
    """Payments' word that the order's time to pay is over, unpaid (on expiration's event)."""
    return PaymentWindowClosed(order_id=order_id)


def paid(order_id: str, payment_id: str = "pay-1") -> PaymentCreated:
    return PaymentCreated(id=payment_id, order_id=order_id, stripe_id="ch_1")


async def ticket_handed_over(app: FastAPI) -> str:
    """A new ticket whose ticket:created went straight to the handler: its id."""
    ticket_id = str(ObjectId())
    await deliver(app, created(ticket_id))
    return ticket_id


async def order_status(db: Database, order_id: str) -> tuple[str, int]:
    doc = await db["orders"].find_one({"_id": ObjectId(order_id)})
    return doc["status"], doc["version"]


# --- ticket:created -----------------------------------------------------------------------------


async def test_ticket_created_adds_the_ticket_to_the_replica(
    client: httpx.AsyncClient, bus: InMemoryBus, db: Database
) -> None:
    ticket_id = str(ObjectId())
    await publish(bus, created(ticket_id, title="Opera", price=19.99))
    assert await db["tickets"].find_one({"_id": ticket_id}) == {
        "_id": ticket_id,
        "title": "Opera",
        "priceCents": 1999,
        "version": 0,
        "reservedBy": None,
    }
    await no_dead_letters(bus)


async def test_a_duplicate_ticket_created_changes_nothing(
    client: httpx.AsyncClient, bus: InMemoryBus, db: Database
) -> None:
    ticket_id = str(ObjectId())
    await publish(bus, created(ticket_id, title="first"), created(ticket_id, title="second"))
    doc = await db["tickets"].find_one({"_id": ticket_id})
    assert doc["title"] == "first"
    assert await db["tickets"].count_documents({}) == 1
    await no_dead_letters(bus)


# --- ticket:updated -----------------------------------------------------------------------------


async def test_ticket_updated_applies_the_next_version(
    client: httpx.AsyncClient, bus: InMemoryBus, db: Database
) -> None:
    ticket_id = str(ObjectId())
    await publish(bus, created(ticket_id), updated(ticket_id, 1, title="new", price=25.5))
    doc = await db["tickets"].find_one({"_id": ticket_id})
    assert (doc["title"], doc["priceCents"], doc["version"]) == ("new", 2550, 1)
    await no_dead_letters(bus)


async def test_ticket_updated_waits_for_a_skipped_version(
    client: httpx.AsyncClient, bus: InMemoryBus, db: Database
) -> None:
    """v2 arrives before v1: v2 is deferred, applied after v1, and the replica ends at v2."""
    ticket_id = str(ObjectId())
    await publish(bus, created(ticket_id), updated(ticket_id, 2), updated(ticket_id, 1))
    doc = await db["tickets"].find_one({"_id": ticket_id})
    assert (doc["title"], doc["version"]) == ("v2", 2)
    await no_dead_letters(bus)


async def test_ticket_updated_from_the_future_is_retried_later(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    ticket_id = await ticket_handed_over(app)
    with pytest.raises(RetryLater):
        await deliver(app, updated(ticket_id, 2))
    assert (await db["tickets"].find_one({"_id": ticket_id}))["version"] == 0


async def test_ticket_updated_before_ticket_created_is_retried_later(
    app: FastAPI, client: httpx.AsyncClient, bus: InMemoryBus, db: Database
) -> None:
    ticket_id = str(ObjectId())
    with pytest.raises(RetryLater):
        await deliver(app, updated(ticket_id, 1))
    # Through the bus the deferred update lands once the replica exists.
    await bus.publish(new_event(updated(ticket_id, 1)))
    await bus.publish(new_event(created(ticket_id)))
    await bus.drain()
    assert (await db["tickets"].find_one({"_id": ticket_id}))["version"] == 1
    await no_dead_letters(bus)


async def test_an_old_or_duplicate_ticket_updated_is_ignored(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    ticket_id = await ticket_handed_over(app)
    await deliver(app, updated(ticket_id, 1, title="one"))
    await deliver(app, updated(ticket_id, 2, title="two"))
    await deliver(app, updated(ticket_id, 1, title="stale"))
    await deliver(app, updated(ticket_id, 2, title="dupe"))
    doc = await db["tickets"].find_one({"_id": ticket_id})
    assert (doc["title"], doc["version"]) == ("two", 2)


async def test_ticket_updated_never_touches_the_reservation(
    place_order: PlaceOrder, post_order: PostOrder, bus: InMemoryBus, db: Database
) -> None:
    placed = await place_order()
    ticket_id = placed["ticket"]["id"]
    # The tickets service records the reservation and publishes it; then a release with no order.
    await publish(bus, updated(ticket_id, 1, order_id=placed["id"]), updated(ticket_id, 2))
    doc = await db["tickets"].find_one({"_id": ticket_id})
    assert (doc["version"], doc["reservedBy"]) == (2, placed["id"])
    assert (await post_order(ticket_id)).status_code == 400


async def test_the_order_shows_the_current_ticket_at_the_price_it_charges(
    place_order: PlaceOrder,
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
    ticket_on_sale: TicketFactory,
    bus: InMemoryBus,
) -> None:
    me = user_headers()
    ticket_id = await ticket_on_sale(title="old")
    placed = await place_order(ticket_id, me)
    await publish(bus, updated(ticket_id, 1, title="renamed", price=12.5))
    shown = (await client.get(f"/api/orders/{placed['id']}", headers=me)).json()
    # A price edited before tickets saw the order does not change what this order charges.
    assert shown["ticket"] == {
        "id": ticket_id,
        "title": "renamed",
        "price": placed["ticket"]["price"],
        "version": 1,
    }
    assert placed["ticket"]["price"] != 12.5


# --- payment:window-closed (the expiry, as payments decides it) -----------------------------------


async def test_expiration_complete_alone_never_cancels_an_order(
    place_order: PlaceOrder, bus: InMemoryBus, db: Database
) -> None:
    """Only payments knows whether a payment was accepted in time: orders waits for its word."""
    placed = await place_order()
    await publish(bus, ExpirationComplete(order_id=placed["id"]))
    assert await order_status(db, placed["id"]) == ("created", 0)
    await published(bus, Subject.ORDER_CANCELLED, 0)
    assert Subject.EXPIRATION_COMPLETE not in listeners.HANDLERS


async def test_window_closed_cancels_the_order_and_publishes(
    place_order: PlaceOrder, bus: InMemoryBus, db: Database
) -> None:
    placed = await place_order()
    ticket_id = placed["ticket"]["id"]
    await publish(bus, expired(placed["id"]))
    assert await order_status(db, placed["id"]) == ("cancelled", 1)
    (event,) = await published(bus, Subject.ORDER_CANCELLED, 1)
    assert (event.data.id, event.data.version, event.data.ticket.id) == (placed["id"], 1, ticket_id)
    await no_dead_letters(bus)


async def test_an_expired_order_frees_the_ticket_for_the_next_buyer(
    place_order: PlaceOrder, bus: InMemoryBus
) -> None:
    placed = await place_order()
    await publish(bus, expired(placed["id"]))
    await place_order(placed["ticket"]["id"])


async def test_window_closed_leaves_a_complete_order_alone(
    place_order: PlaceOrder, post_order: PostOrder, bus: InMemoryBus, db: Database
) -> None:
    placed = await place_order()
    ticket_id = placed["ticket"]["id"]
    # One publish at a time: each subject has its own consumer, so together they could race.
    await publish(bus, paid(placed["id"]))
    await publish(bus, expired(placed["id"]))
    assert await order_status(db, placed["id"]) == ("complete", 1)
    await published(bus, Subject.ORDER_CANCELLED, 0)
    # The paid order keeps its ticket.
    assert (await post_order(ticket_id)).status_code == 400
    await no_dead_letters(bus)


# --- payment:created ----------------------------------------------------------------------------


async def test_payment_created_completes_the_order(
    place_order: PlaceOrder,
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
    bus: InMemoryBus,
    db: Database,
) -> None:
    me = user_headers()
    placed = await place_order(headers=me)
    ticket_id = placed["ticket"]["id"]
    await publish(bus, paid(placed["id"]))
    assert await order_status(db, placed["id"]) == ("complete", 1)
    shown = (await client.get(f"/api/orders/{placed['id']}", headers=me)).json()
    assert (shown["status"], shown["version"]) == ("complete", 1)
    # Orders' decision, for payments to capture: the order's new version, through the outbox.
    (event,) = await published(bus, Subject.ORDER_COMPLETED, 1)
    assert (event.data.id, event.data.version, event.data.ticket.id) == (placed["id"], 1, ticket_id)

    async def outbox_emptied() -> bool:
        doc = await db["orders"].find_one({"_id": ObjectId(placed["id"])})
        return doc["_outbox"] == [] and doc["_outboxPending"] is False

    await eventually(outbox_emptied)
    await no_dead_letters(bus)


async def test_a_duplicate_payment_created_completes_once(
    place_order: PlaceOrder, bus: InMemoryBus, db: Database
) -> None:
    placed = await place_order()
    # Redelivered under new envelope ids: JetStream's de-duplication cannot hide them.
    await publish(bus, paid(placed["id"]), paid(placed["id"]), paid(placed["id"]))
    assert await order_status(db, placed["id"]) == ("complete", 1)
    await published(bus, Subject.ORDER_COMPLETED, 1)
    await no_dead_letters(bus)


async def test_a_cancelled_order_never_becomes_complete(
    place_order: PlaceOrder,
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
    bus: InMemoryBus,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The payment was authorized while the cancel was on its way: the order stays cancelled,
    nothing announces it complete (so nothing is captured); payments voids on order:cancelled."""
    me = user_headers()
    placed = await place_order(headers=me)
    assert (await client.delete(f"/api/orders/{placed['id']}", headers=me)).status_code == 204
    with caplog.at_level(logging.INFO, logger="ticketing.orders"):
        await publish(bus, paid(placed["id"]))
    assert await order_status(db, placed["id"]) == ("cancelled", 1)
    assert any("voided by payments" in r.getMessage() for r in caplog.records)
    await published(bus, Subject.ORDER_COMPLETED, 0)
    (cancelled,) = await published(bus, Subject.ORDER_CANCELLED, 1)
    assert (cancelled.data.id, cancelled.data.version) == (placed["id"], 1)
    await no_dead_letters(bus)


# --- an order that does not exist ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "unchanged"),
    [
        pytest.param(
            [expired(str(ObjectId())), expired("nope")], Subject.ORDER_CANCELLED, id="window-closed"
        ),
        pytest.param(
            [paid(str(ObjectId())), paid("nope", payment_id="pay-2")],
            Subject.ORDER_COMPLETED,
            id="payment-created",
        ),
    ],
)
async def test_an_event_for_an_unknown_or_malformed_order_is_acked(
    client: httpx.AsyncClient, bus: InMemoryBus, events: list[EventData], unchanged: Subject
) -> None:
    await publish(bus, *events)
    await published(bus, unchanged, 0)
    await no_dead_letters(bus)


# --- every handler, each event twice and out of order -------------------------------------------


async def test_every_handler_copes_with_duplicates_and_disorder(
    place_order: PlaceOrder, app: FastAPI, bus: InMemoryBus, db: Database
) -> None:
    ticket_id = str(ObjectId())
    # Ticket events: updates before the creation, each twice, in reverse order.
    ticket_events: list[EventData] = [
        updated(ticket_id, 3, title="three"),
        updated(ticket_id, 2),
        updated(ticket_id, 1),
        created(ticket_id),
    ]
    for data in ticket_events + ticket_events:
        await bus.publish(new_event(data))
    await bus.drain()
    ticket = await db["tickets"].find_one({"_id": ticket_id})
    assert (ticket["title"], ticket["version"]) == ("three", 3)

    # Order events, each twice, handed to the handlers in a set order (through the bus, events
    # of different subjects race): one order is paid and then expires; another expires and then
    # a late payment arrives.
    first = await place_order(ticket_id)
    for data in (paid(first["id"]), expired(first["id"])) * 2:
        await deliver(app, data)
    assert await order_status(db, first["id"]) == ("complete", 1)

    other_ticket = str(ObjectId())
    await publish(bus, created(other_ticket))
    second = await place_order(other_ticket)
    for data in (expired(second["id"]), paid(second["id"], payment_id="pay-2")) * 2:
        await deliver(app, data)
    assert await order_status(db, second["id"]) == ("cancelled", 1)

    (event,) = await published(bus, Subject.ORDER_CANCELLED, 1)
    assert event.data.id == second["id"]
    (done,) = await published(bus, Subject.ORDER_COMPLETED, 1)
    assert (done.data.id, done.data.version) == (first["id"], 1)
    await no_dead_letters(bus)


async def test_payment_and_expiry_racing_end_consistently(
    place_order: PlaceOrder, bus: InMemoryBus, db: Database
) -> None:
    """Whichever lands first wins; the order is never both paid and announced cancelled."""
    placed = await place_order()
    await publish(bus, paid(placed["id"]), expired(placed["id"]))
    status, version = await order_status(db, placed["id"])
    assert version == 1
    cancelled = await published(bus, Subject.ORDER_CANCELLED, 1 if status == "cancelled" else 0)
    completed = await published(bus, Subject.ORDER_COMPLETED, 1 if status == "complete" else 0)
    assert status in ("complete", "cancelled")
    assert len(cancelled) == (status == "cancelled")
    assert len(completed) == (status == "complete")
    await no_dead_letters(bus)


# --- reservations a crash left behind -----------------------------------------------------------


async def test_a_reservation_of_a_cancelled_order_is_taken_over(
    place_order: PlaceOrder, db: Database
) -> None:
    """The process died between cancelling the order and releasing the ticket."""
    placed = await place_order()
    ticket_id = placed["ticket"]["id"]
    await db["orders"].update_one(
        {"_id": ObjectId(placed["id"])}, {"$set": {"status": "cancelled"}}
    )
    nxt = await place_order(ticket_id)
    ticket = await db["tickets"].find_one({"_id": ticket_id})
    assert ticket["reservedBy"] == nxt["id"]


async def test_a_reservation_naming_an_order_that_does_not_exist_is_taken_over(
    place_order: PlaceOrder, ticket_on_sale: TicketFactory, db: Database
) -> None:
    """Its order was withdrawn by a buyer who then died before taking the ticket over."""
    ticket_id = await ticket_on_sale()
    await db["tickets"].update_one({"_id": ticket_id}, {"$set": {"reservedBy": str(ObjectId())}})
    placed = await place_order(ticket_id)
    assert (await db["tickets"].find_one({"_id": ticket_id}))["reservedBy"] == placed["id"]


async def test_an_unconfirmed_holder_is_taken_over_and_never_shown(
    place_order: PlaceOrder,
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
    ticket_on_sale: TicketFactory,
    db: Database,
    bus: InMemoryBus,
    unconfirmed_holder: Callable[[Any, str], Awaitable[ObjectId]],
) -> None:
    """The buyer's process died between reserving the ticket and confirming its order."""
    ticket_id = await ticket_on_sale()
    ghost_buyer = user_headers()
    ghost = await unconfirmed_holder(db, ticket_id)
    assert (await client.get(f"/api/orders/{ghost}", headers=ghost_buyer)).status_code == 404
    placed = await place_order(ticket_id)
    assert (await db["tickets"].find_one({"_id": ticket_id}))["reservedBy"] == placed["id"]
    assert await db["orders"].find_one({"_id": ghost}) is None
    (announced,) = await published(bus, Subject.ORDER_CREATED, 1)
    assert announced.data.id == placed["id"]


async def test_a_failed_order_insert_releases_the_reservation(
    place_order: PlaceOrder,
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
    ticket_on_sale: TicketFactory,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticket_id = await ticket_on_sale()
    orders = db["orders"]

    async def broken_insert(*args: object, **kwargs: object) -> None:
        raise RuntimeError("mongo went away")

    monkeypatch.setattr(type(orders), "insert_one", broken_insert)
    res = await client.post("/api/orders", json={"ticketId": ticket_id}, headers=user_headers())
    assert res.status_code == 500
    assert (await db["tickets"].find_one({"_id": ticket_id}))["reservedBy"] is None
    monkeypatch.undo()
    await place_order(ticket_id)
