"""The orders collection and an order's state machine: created, then complete (paid) or
cancelled (by its buyer or by expiry), once and one way.

Orders alone decides an order's fate: `cancel_order` and `complete_order` each change an open
order with one conditional write that also stores the event announcing it, so exactly one of
them wins whatever the timing, and the event exists exactly when the change does.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum, auto
from typing import NotRequired

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from ticketing_common.events import (
    Event,
    OrderCancelled,
    OrderCompleted,
    OrderStatus,
    TicketRef,
    new_event,
)
from ticketing_common.mongo import Database, Document, IndexSpec, collection
from ticketing_common.outbox import Outbox, OutboxCollection, Outboxed, strip_outbox
from ticketing_orders import replica

ORDERS = "orders"


class OrderDoc(Outboxed):
    """A document of `orders`."""

    _id: ObjectId
    userId: str
    # An OrderStatus value.
    status: str
    # A datetime; nx-27017 may read one back as a string (see `mongo.as_utc`).
    expiresAt: datetime | str
    version: int
    # The tickets service's id of the ticket (the replica's `_id`).
    ticketId: str
    # False from insertion until the reservation confirms (see `reservations`); absent from
    # orders written before confirmation existed.
    confirmed: NotRequired[bool]
    # What the order is charged: set when it confirms, so every visible order has it.
    priceCents: NotRequired[int]


def orders_of(db: Database) -> AsyncCollection[OrderDoc]:
    """The orders collection, typed (for `reservations`, which writes it too)."""
    return collection(db, ORDERS, OrderDoc)


def outboxed_orders(outbox: Outbox) -> OutboxCollection[OrderDoc]:
    """The orders collection's writes that carry events, typed."""
    return outbox.collection(ORDERS, OrderDoc)


INDEXES = [
    IndexSpec(ORDERS, [("userId", 1), ("_id", -1)], {"name": "user_newest_first"}),
    # The sweep of unconfirmed reservations: open orders by how long ago they ran out.
    IndexSpec(ORDERS, [("status", 1), ("expiresAt", 1)], {"name": "status_expires"}),
]

# Statuses in which an order holds its ticket and may still be cancelled or paid.
OPEN_STATUSES = [OrderStatus.CREATED.value, OrderStatus.AWAITING_PAYMENT.value]

# Orders that exist for their buyer: confirmed, or written before confirmation existed.
VISIBLE: Document = {"confirmed": {"$ne": False}}

# Each retry of a conditional write follows another writer's successful change to the same
# document, and an order or a reservation changes only a handful of times, so a few attempts
# always suffice.
ATTEMPTS = 5

SWEEP_PAGE = 100


class CancelResult(Enum):
    CANCELLED = auto()
    ALREADY_CANCELLED = auto()
    COMPLETE = auto()
    NOT_FOUND = auto()


class CompleteResult(Enum):
    COMPLETED = auto()
    ALREADY_COMPLETE = auto()
    CANCELLED = auto()
    NOT_FOUND = auto()


async def get_order(db: Database, *, order_id: ObjectId) -> OrderDoc | None:
    doc = await orders_of(db).find_one({"_id": order_id, **VISIBLE})
    return strip_outbox(doc) if doc is not None else None


async def list_orders(
    db: Database, *, user_id: str, limit: int, before: ObjectId | None = None
) -> list[OrderDoc]:
    """The user's orders, newest first (`_id` order), optionally those older than `before`."""
    query: Document = {"userId": user_id, **VISIBLE}
    if before is not None:
        query["_id"] = {"$lt": before}
    cursor = orders_of(db).find(query).sort("_id", -1).limit(limit)
    return [strip_outbox(doc) async for doc in cursor]


async def cancel_order(
    outbox: Outbox, *, order_id: ObjectId
) -> tuple[CancelResult, OrderDoc | None]:
    """Cancel an open order (publishing order:cancelled) and free its ticket.

    The one way an order is cancelled, by its buyer or by expiry. Cancelling a cancelled order
    changes nothing and publishes nothing; a complete (paid) order cannot be cancelled.
    """
    db = outbox.db
    for _ in range(ATTEMPTS):
        order = await get_order(db, order_id=order_id)
        if order is None:
            return CancelResult.NOT_FOUND, None
        if order["status"] == OrderStatus.COMPLETE:
            return CancelResult.COMPLETE, order
        if order["status"] == OrderStatus.CANCELLED:
            # The release may not have happened if a process died right after the cancel.
            await replica.release_ticket(db, ticket_id=order["ticketId"], order_id=str(order_id))
            return CancelResult.ALREADY_CANCELLED, order
        event = new_event(
            OrderCancelled(
                id=str(order_id),
                version=order["version"] + 1,
                ticket=TicketRef(id=order["ticketId"]),
            )
        )
        updated = await outboxed_orders(outbox).versioned_update(
            event,
            id=order_id,
            version=order["version"],
            update={"$set": {"status": OrderStatus.CANCELLED.value}},
            extra_filter={"status": {"$in": OPEN_STATUSES}},
        )
        if updated is not None:
            await replica.release_ticket(db, ticket_id=order["ticketId"], order_id=str(order_id))
            return CancelResult.CANCELLED, strip_outbox(updated)
    raise RuntimeError(f"order {order_id} kept changing while being cancelled")


async def complete_order(outbox: Outbox, *, order_id: ObjectId) -> CompleteResult:
    """Complete an open order that a payment authorized, publishing order:completed.

    A cancelled order never becomes complete (payments voids its authorization on
    order:cancelled); a complete one publishes nothing more. order:completed (which makes
    payments capture the money) is written in the same update as the status, so it exists
    exactly when the order is complete.
    """
    for _ in range(ATTEMPTS):
        order = await get_order(outbox.db, order_id=order_id)
        if order is None:
            return CompleteResult.NOT_FOUND
        if order["status"] == OrderStatus.COMPLETE:
            return CompleteResult.ALREADY_COMPLETE
        if order["status"] == OrderStatus.CANCELLED:
            return CompleteResult.CANCELLED
        updated = await outboxed_orders(outbox).versioned_update(
            _completed_event(order, version=order["version"] + 1),
            id=order_id,
            version=order["version"],
            update={"$set": {"status": OrderStatus.COMPLETE.value}},
            extra_filter={"status": {"$in": OPEN_STATUSES}},
        )
        if updated is not None:
            return CompleteResult.COMPLETED
    raise RuntimeError(f"order {order_id} kept changing while being completed")


def _completed_event(order: OrderDoc, *, version: int) -> Event[OrderCompleted]:
    return new_event(
        OrderCompleted(
            id=str(order["_id"]),
            version=version,
            ticket=TicketRef(id=order["ticketId"]),
        )
    )
