"""The orders collection, the replica of tickets, and the atomic reservation between them.

Of any number of concurrent buyers of one ticket exactly one ends with an open order, on every
Mongo we run on, without transactions, partial unique indexes or clocks (see `create_order`):
the order is inserted unconfirmed, the ticket's replica is reserved naming it with a
conditional single-document update, and the order then confirms with a compare-and-set. Only a
holder that never confirmed, or whose order is cancelled or gone, can be taken over, and taking
over an unconfirmed holder is the compare-and-set that its confirmation would need.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import (
    Event,
    OrderCancelled,
    OrderCancelledTicketRef,
    OrderCompleted,
    OrderCompletedTicketRef,
    OrderCreated,
    OrderStatus,
    OrderTicketRef,
    TicketCreated,
    TicketUpdated,
    new_event,
)
from ticketing_common.money import to_cents, to_dollars
from ticketing_common.mongo import Document, IndexSpec, parse_object_id, versioned_update
from ticketing_common.outbox import outbox_fields, strip_outbox, with_outbox

log = logging.getLogger("ticketing.orders")

TICKETS = "tickets"
ORDERS = "orders"

INDEXES = [
    IndexSpec(ORDERS, [("userId", 1), ("_id", -1)], {"name": "user_newest_first"}),
    # The expiry sweep: open orders by how long ago they ran out.
    IndexSpec(ORDERS, [("status", 1), ("expiresAt", 1)], {"name": "status_expires"}),
]

# A pause point between the steps of a reservation: tests interleave two buyers through it.
Pause = Callable[[str], Awaitable[None]]

# Statuses in which an order holds its ticket and may still be cancelled or paid.
OPEN_STATUSES = [OrderStatus.CREATED.value, OrderStatus.AWAITING_PAYMENT.value]

# Each retry below follows another writer's successful change to the same document, and an
# order or a reservation changes only a handful of times, so a few attempts always suffice.
_ATTEMPTS = 5


class TicketNotFoundError(Exception):
    pass


class TicketReservedError(Exception):
    pass


class CancelResult(Enum):
    CANCELLED = "cancelled"
    ALREADY_CANCELLED = "already cancelled"
    COMPLETE = "complete"
    NOT_FOUND = "not found"


class CompleteResult(Enum):
    COMPLETED = "completed"
    ALREADY_COMPLETE = "already complete"
    CANCELLED = "cancelled"
    NOT_FOUND = "not found"


def _to_millis(value: datetime) -> datetime:
    # BSON dates hold milliseconds: truncate up front so the response, the event and every
    # later read of the order carry the same instant.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# --- the replica of tickets ---------------------------------------------------------------------


async def get_ticket(db: Any, *, ticket_id: str) -> Document | None:
    doc: Document | None = await db[TICKETS].find_one({"_id": ticket_id})
    return doc


async def get_tickets(db: Any, *, ticket_ids: list[str]) -> dict[str, Document]:
    unique = sorted(set(ticket_ids))
    cursor = db[TICKETS].find({"_id": {"$in": unique}}).limit(len(unique))
    return {doc["_id"]: doc async for doc in cursor}


async def insert_ticket(db: Any, *, data: TicketCreated) -> bool:
    """Add a ticket to the replica; False if it is already there (a duplicate event)."""
    try:
        await db[TICKETS].insert_one(
            {
                "_id": data.id,
                "title": data.title,
                "priceCents": to_cents(data.price),
                "version": data.version,
                "reservedBy": None,
            }
        )
    except DuplicateKeyError:
        return False
    return True


async def apply_ticket_update(db: Any, *, data: TicketUpdated) -> bool:
    """Apply an update only if it is the replica's next version; False if it is not.

    The reservation fields are ours, not the ticket owner's, and are never touched here.
    """
    doc: Document | None = await db[TICKETS].find_one_and_update(
        {"_id": data.id, "version": data.version - 1},
        {
            "$set": {
                "title": data.title,
                "priceCents": to_cents(data.price),
                "version": data.version,
            }
        },
    )
    return doc is not None


async def _reserve(
    db: Any, *, ticket_id: str, holder: str | None, order_id: str
) -> Document | None:
    """Make `order_id` the ticket's holder if `holder` still is (None: the ticket is free)."""
    doc: Document | None = await db[TICKETS].find_one_and_update(
        {"_id": ticket_id, "reservedBy": holder},
        {"$set": {"reservedBy": order_id}},
        return_document=ReturnDocument.AFTER,
    )
    return doc


async def release_ticket(db: Any, *, ticket_id: str, order_id: str) -> None:
    """Free the ticket if, and only if, this order still holds it."""
    await db[TICKETS].update_one(
        {"_id": ticket_id, "reservedBy": order_id},
        {"$set": {"reservedBy": None}},
    )


async def _no_pause(step: str) -> None:
    return None


async def _withdraw_unconfirmed(db: Any, *, order_id: ObjectId) -> bool:
    """Delete an order that has not confirmed its reservation; False if it confirmed first.

    The compare-and-set that decides a race between a buyer confirming and another taking the
    ticket over: one of `confirmed: False -> True` and this delete matches, never both.
    """
    result = await db[ORDERS].delete_one({"_id": order_id, "confirmed": False})
    return bool(result.deleted_count == 1)


async def _holder_stands(db: Any, *, holder: str, pause: Pause) -> bool:
    """Whether the ticket's holder keeps it: a confirmed order that is not cancelled.

    An unconfirmed holder (a buyer between reserving and confirming, alive or dead) is withdrawn
    here; a holder that does not exist was withdrawn before. Nothing depends on a clock.
    """
    order_id = parse_object_id(holder)
    if order_id is None:
        return False
    for _ in range(_ATTEMPTS):
        order: Document | None = await db[ORDERS].find_one({"_id": order_id})
        if order is None:
            return False
        if order.get("confirmed") is False:
            await pause("withdraw")
            if await _withdraw_unconfirmed(db, order_id=order_id):
                return False
            continue  # it confirmed in the meantime: read it again
        return bool(order["status"] != OrderStatus.CANCELLED)
    return True  # changing under us: leave it to its owner


async def reserve_ticket(
    db: Any, *, ticket_id: str, order_id: str, pause: Pause = _no_pause
) -> Document:
    """Reserve the ticket for the (inserted, unconfirmed) order `order_id` and return it; raise
    TicketReservedError if a holder that stands has it."""
    for _ in range(_ATTEMPTS):
        ticket = await _reserve(db, ticket_id=ticket_id, holder=None, order_id=order_id)
        if ticket is not None:
            return ticket
        current = await get_ticket(db, ticket_id=ticket_id)
        if current is None:
            raise TicketNotFoundError(ticket_id)
        holder = current.get("reservedBy")
        if holder is None:
            continue  # released in the meantime: try again
        await pause("check holder")
        if await _holder_stands(db, holder=holder, pause=pause):
            raise TicketReservedError(ticket_id)
        await pause("take over")
        ticket = await _reserve(db, ticket_id=ticket_id, holder=holder, order_id=order_id)
        if ticket is not None:
            log.info(
                "reservation taken over",
                extra={"ticket_id": ticket_id, "from_order": holder, "order_id": order_id},
            )
            return ticket
    raise TicketReservedError(ticket_id)


# --- orders -------------------------------------------------------------------------------------

# Orders that exist for their buyer: confirmed, or written before confirmation existed.
VISIBLE: Document = {"confirmed": {"$ne": False}}


async def get_order(db: Any, *, order_id: ObjectId) -> Document | None:
    doc: Document | None = await db[ORDERS].find_one({"_id": order_id, **VISIBLE})
    return strip_outbox(doc) if doc is not None else None


async def list_orders(
    db: Any, *, user_id: str, limit: int, before: ObjectId | None = None
) -> list[Document]:
    """The user's orders, newest first (`_id` order), optionally those older than `before`."""
    query: Document = {"userId": user_id, **VISIBLE}
    if before is not None:
        query["_id"] = {"$lt": before}
    cursor = db[ORDERS].find(query).sort("_id", -1).limit(limit)
    return [strip_outbox(doc) async for doc in cursor]


async def create_order(
    db: Any, *, user_id: str, ticket_id: str, expires_in: timedelta, pause: Pause = _no_pause
) -> tuple[Document, Document]:
    """Insert the order, reserve the ticket naming it, confirm; (order, ticket).

    Three writes, each safe to be the last one that happens:
    1. the order is inserted unconfirmed: invisible, announces nothing, holds nothing;
    2. the ticket is reserved naming it (or taken over from a holder that does not stand);
    3. the order confirms with a compare-and-set (`confirmed: False -> True`) that also writes
       order:created to its outbox. Another buyer may withdraw an unconfirmed holder (delete it
       with the opposite compare-and-set) and take the ticket; exactly one of the two matches.
    A buyer that dies after 2 leaves a holder any later buyer may take over at once.
    """
    if await get_ticket(db, ticket_id=ticket_id) is None:
        raise TicketNotFoundError(ticket_id)
    order_id = ObjectId()
    expires_at = _to_millis(datetime.now(UTC) + expires_in)
    await pause("insert")
    await db[ORDERS].insert_one(
        {
            "_id": order_id,
            "userId": user_id,
            "status": OrderStatus.CREATED.value,
            "expiresAt": expires_at,
            "version": 0,
            "ticketId": ticket_id,
            "confirmed": False,
            # An empty outbox from the start: the confirmation appends order:created to it.
            **outbox_fields(),
        }
    )
    try:
        await pause("reserve")
        ticket = await reserve_ticket(db, ticket_id=ticket_id, order_id=str(order_id), pause=pause)
        await pause("confirm")
        event = new_event(
            OrderCreated(
                id=str(order_id),
                version=0,
                status=OrderStatus.CREATED,
                user_id=user_id,
                expires_at=expires_at,
                ticket=OrderTicketRef(id=ticket_id, price=to_dollars(ticket["priceCents"])),
            )
        )
        # The price the buyer was shown when the ticket was reserved.
        update = {"$set": {"confirmed": True, "priceCents": ticket["priceCents"]}}
        order: Document | None = await db[ORDERS].find_one_and_update(
            {"_id": order_id, "confirmed": False},
            with_outbox(update, event),
            return_document=ReturnDocument.AFTER,
        )
        if order is None:
            # Withdrawn by a buyer who found the reservation unconfirmed and took it over.
            log.info("reservation taken over before confirmation", extra={"order": str(order_id)})
            raise TicketReservedError(ticket_id)
    except (TicketReservedError, TicketNotFoundError):
        await _withdraw_unconfirmed(db, order_id=order_id)
        await release_ticket(db, ticket_id=ticket_id, order_id=str(order_id))
        raise
    return strip_outbox(order), ticket


SWEEP_PAGE = 100


async def sweep_unconfirmed(db: Any, *, older_than: datetime, limit: int = SWEEP_PAGE) -> int:
    """Delete orders that never confirmed (their buyer died mid-way) and free what they hold."""
    query = {"confirmed": False, "expiresAt": {"$lt": older_than}}
    removed = 0
    async for doc in db[ORDERS].find(query, {"ticketId": 1}).limit(limit):
        if await _withdraw_unconfirmed(db, order_id=doc["_id"]):
            await release_ticket(db, ticket_id=doc["ticketId"], order_id=str(doc["_id"]))
            removed += 1
    return removed


async def overdue_orders(db: Any, *, cutoff: datetime, limit: int = SWEEP_PAGE) -> list[ObjectId]:
    """Open orders whose time ran out before `cutoff` (indexed by status and expiresAt)."""
    query = {"status": {"$in": OPEN_STATUSES}, "expiresAt": {"$lt": cutoff}, **VISIBLE}
    cursor = db[ORDERS].find(query, {"_id": 1}).sort("expiresAt", 1).limit(limit)
    return [doc["_id"] async for doc in cursor]


async def cancel_order(db: Any, *, order_id: ObjectId) -> tuple[CancelResult, Document | None]:
    """Cancel an open order (publishing order:cancelled) and free its ticket.

    The one way an order is cancelled, by its buyer or by expiry. Cancelling a cancelled order
    changes nothing and publishes nothing; a complete (paid) order cannot be cancelled.
    """
    for _ in range(_ATTEMPTS):
        order = await get_order(db, order_id=order_id)
        if order is None:
            return CancelResult.NOT_FOUND, None
        if order["status"] == OrderStatus.COMPLETE:
            return CancelResult.COMPLETE, order
        if order["status"] == OrderStatus.CANCELLED:
            # The release may not have happened if a process died right after the cancel.
            await release_ticket(db, ticket_id=order["ticketId"], order_id=str(order_id))
            return CancelResult.ALREADY_CANCELLED, order
        event = new_event(
            OrderCancelled(
                id=str(order_id),
                version=order["version"] + 1,
                ticket=OrderCancelledTicketRef(id=order["ticketId"]),
            )
        )
        updated = await versioned_update(
            db[ORDERS],
            id=order_id,
            version=order["version"],
            update=with_outbox({"$set": {"status": OrderStatus.CANCELLED.value}}, event),
            extra_filter={"status": {"$in": OPEN_STATUSES}},
        )
        if updated is not None:
            await release_ticket(db, ticket_id=order["ticketId"], order_id=str(order_id))
            return CancelResult.CANCELLED, strip_outbox(updated)
    raise RuntimeError(f"order {order_id} kept changing while being cancelled")


async def complete_order(db: Any, *, order_id: ObjectId) -> CompleteResult:
    """Complete an open order that a payment authorized, publishing order:completed.

    Orders alone decides an order's fate: this and `cancel_order` each change an open order
    with one conditional write, so exactly one of them wins. A cancelled order never becomes
    complete (payments voids its authorization on order:cancelled); a complete one publishes
    nothing more. order:completed (which makes payments capture the money) is written in the
    same update as the status, so it exists exactly when the order is complete.
    """
    for _ in range(_ATTEMPTS):
        order = await get_order(db, order_id=order_id)
        if order is None:
            return CompleteResult.NOT_FOUND
        if order["status"] == OrderStatus.COMPLETE:
            return CompleteResult.ALREADY_COMPLETE
        if order["status"] == OrderStatus.CANCELLED:
            return CompleteResult.CANCELLED
        updated = await versioned_update(
            db[ORDERS],
            id=order_id,
            version=order["version"],
            update=with_outbox(
                {"$set": {"status": OrderStatus.COMPLETE.value}},
                _completed_event(order, version=order["version"] + 1),
            ),
            extra_filter={"status": {"$in": OPEN_STATUSES}},
        )
        if updated is not None:
            return CompleteResult.COMPLETED
    raise RuntimeError(f"order {order_id} kept changing while being completed")


def _completed_event(order: Document, *, version: int) -> Event[OrderCompleted]:
    return new_event(
        OrderCompleted(
            id=str(order["_id"]),
            version=version,
            ticket=OrderCompletedTicketRef(id=order["ticketId"]),
        )
    )
