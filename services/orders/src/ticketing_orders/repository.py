"""The orders collection, the replica of tickets, and the atomic reservation between them.

Reserving a ticket is one conditional single-document update on its replica
(`reservedBy: None` -> the new order's id), so of any number of concurrent buyers exactly one
wins, on every Mongo we run on, without transactions or partial unique indexes. The order is
inserted right after; the reservation and the order are two writes, so every way the second can
go missing is covered:
- the insert fails: the reservation is released at once;
- the process dies in between: the reservation names an order that does not exist, and once it
  is older than `ORPHAN_RESERVATION_SECONDS` the next buyer takes it over;
- an order is cancelled but the process dies before the release: the reservation names a
  cancelled order, which the next buyer takes over too.
A takeover is itself a conditional update (`reservedBy: <that holder>`), so it has one winner.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import (
    OrderCancelled,
    OrderCancelledTicketRef,
    OrderCreated,
    OrderStatus,
    OrderTicketRef,
    TicketCreated,
    TicketUpdated,
    new_event,
)
from ticketing_common.mongo import Document, IndexSpec, as_utc, parse_object_id, versioned_update
from ticketing_common.outbox import outbox_fields, strip_outbox, with_outbox

log = logging.getLogger("ticketing.orders")

TICKETS = "tickets"
ORDERS = "orders"

INDEXES = [IndexSpec(ORDERS, [("userId", 1), ("_id", -1)], {"name": "user_newest_first"})]

# A live request inserts its order milliseconds after reserving; a reservation whose order is
# still missing after this long was left by a process that died in between.
ORPHAN_RESERVATION_SECONDS = 30

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


def to_cents(price: float) -> int:
    # str() first: 19.99 * 100 is 1998.9999...; Decimal("19.99") * 100 is exactly 1999.
    return int((Decimal(str(price)) * 100).to_integral_value(rounding=ROUND_HALF_UP))


def to_dollars(cents: int) -> float:
    return cents / 100


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
                "reservedAt": None,
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
        {"$set": {"reservedBy": order_id, "reservedAt": datetime.now(UTC)}},
        return_document=ReturnDocument.AFTER,
    )
    return doc


async def release_ticket(db: Any, *, ticket_id: str, order_id: str) -> None:
    """Free the ticket if, and only if, this order still holds it."""
    await db[TICKETS].update_one(
        {"_id": ticket_id, "reservedBy": order_id},
        {"$set": {"reservedBy": None, "reservedAt": None}},
    )


async def _holder_is_gone(db: Any, *, ticket: Document) -> bool:
    """Whether the ticket's current reservation no longer stands and may be taken over."""
    holder = ticket["reservedBy"]
    order_id = parse_object_id(holder)
    order = await get_order(db, order_id=order_id) if order_id is not None else None
    if order is not None:
        return bool(order["status"] == OrderStatus.CANCELLED)
    reserved_at = _stored_time(ticket.get("reservedAt"))
    if reserved_at is None:
        # Fail closed: a ticket stuck until someone looks beats a ticket sold twice.
        log.error("reservation without a readable time", extra={"ticket_id": ticket["_id"]})
        return False
    return datetime.now(UTC) - reserved_at > timedelta(seconds=ORPHAN_RESERVATION_SECONDS)


def _stored_time(value: Any) -> datetime | None:
    """A datetime as read back from any of our Mongo backends; None when unreadable."""
    try:
        return as_utc(value)
    except (ValueError, TypeError):
        return None


async def reserve_ticket(db: Any, *, ticket_id: str, order_id: str) -> Document:
    """Reserve the ticket for `order_id` and return it; raise if another order holds it."""
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
        if not await _holder_is_gone(db, ticket=current):
            raise TicketReservedError(ticket_id)
        ticket = await _reserve(db, ticket_id=ticket_id, holder=holder, order_id=order_id)
        if ticket is not None:
            log.info(
                "reservation taken over",
                extra={"ticket_id": ticket_id, "from_order": holder, "order_id": order_id},
            )
            return ticket
    raise TicketReservedError(ticket_id)


# --- orders -------------------------------------------------------------------------------------


async def get_order(db: Any, *, order_id: ObjectId) -> Document | None:
    doc: Document | None = await db[ORDERS].find_one({"_id": order_id})
    return strip_outbox(doc) if doc is not None else None


async def list_orders(
    db: Any, *, user_id: str, limit: int, before: ObjectId | None = None
) -> list[Document]:
    """The user's orders, newest first (`_id` order), optionally those older than `before`."""
    query: Document = {"userId": user_id}
    if before is not None:
        query["_id"] = {"$lt": before}
    cursor = db[ORDERS].find(query).sort("_id", -1).limit(limit)
    return [strip_outbox(doc) async for doc in cursor]


async def create_order(
    db: Any, *, user_id: str, ticket_id: str, expires_in: timedelta
) -> tuple[Document, Document]:
    """Reserve the ticket and insert the order with its order:created event; (order, ticket)."""
    if await get_ticket(db, ticket_id=ticket_id) is None:
        raise TicketNotFoundError(ticket_id)
    order_id = ObjectId()
    ticket = await reserve_ticket(db, ticket_id=ticket_id, order_id=str(order_id))
    expires_at = _to_millis(datetime.now(UTC) + expires_in)
    order: Document = {
        "_id": order_id,
        "userId": user_id,
        "status": OrderStatus.CREATED.value,
        "expiresAt": expires_at,
        "version": 0,
        "ticketId": ticket_id,
        # The price the buyer was shown when the ticket was reserved.
        "priceCents": ticket["priceCents"],
    }
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
    try:
        await db[ORDERS].insert_one({**order, **outbox_fields(event)})
    except Exception:
        # An error reply does not prove the write failed (a connection lost after the server
        # applied it): keep the reservation of an order that exists. If even this check fails,
        # the reservation stays orphaned and the next buyer takes it over after a while.
        if await db[ORDERS].find_one({"_id": order_id}, {"_id": 1}) is None:
            await release_ticket(db, ticket_id=ticket_id, order_id=str(order_id))
            raise
        log.warning(
            "order insert reported an error but was applied", extra={"order_id": str(order_id)}
        )
    # A reservation taken over as orphaned (our insert was slower than the takeover window, or
    # clocks disagree) must not leave two live orders for one ticket: check we still hold it,
    # and if not, withdraw the order we just wrote (the relay's sweep publishes its created and
    # cancelled events; this path is rare enough not to need the immediate kick).
    held = await get_ticket(db, ticket_id=ticket_id)
    if held is None or held.get("reservedBy") != str(order_id):
        log.warning(
            "reservation lost before the order was written", extra={"order_id": str(order_id)}
        )
        await cancel_order(db, order_id=order_id)
        raise TicketReservedError(ticket_id)
    return order, ticket


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
    """Mark an open order paid. A cancelled order never becomes complete."""
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
            update={"$set": {"status": OrderStatus.COMPLETE.value}},
            extra_filter={"status": {"$in": OPEN_STATUSES}},
        )
        if updated is not None:
            return CompleteResult.COMPLETED
    raise RuntimeError(f"order {order_id} kept changing while being completed")
