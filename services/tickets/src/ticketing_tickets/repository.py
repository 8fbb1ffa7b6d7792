"""The tickets collection.

Every change is one conditional single-document write that also stores its event (the outbox),
conditioned on the version read, so two writers can never both apply a change to the same
version and the event always describes exactly the state it was written with.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from ticketing_common.events import Event, TicketCreated, TicketUpdated, new_event
from ticketing_common.money import to_dollars
from ticketing_common.mongo import Document, IndexSpec, parse_object_id, versioned_update
from ticketing_common.outbox import outbox_fields, with_outbox

TICKETS = "tickets"

# Order ids whose order:cancelled has been applied. Kept because events of different subjects
# arrive in any order: an order:created arriving after its order:cancelled must not reserve.
RELEASED = "releasedOrderIds"

# The listing reads unreserved tickets newest first, from a cursor.
INDEXES = [IndexSpec(TICKETS, [("orderId", 1), ("_id", -1)])]

# `$eq`, not a bare None: nx-27017 matches nothing for `{"orderId": None}` next to a range on
# `_id`; `$eq: None` means the same on every backend and uses the same index.
UNRESERVED: Document = {"orderId": {"$eq": None}}


def _price(doc: Document) -> float:
    cents: int = doc["priceCents"]
    return to_dollars(cents)


def _updated_event(ticket: Document, **changes: Any) -> Event[TicketUpdated]:
    """The ticket:updated of `ticket` after `changes` and one version bump."""
    state = {**ticket, **changes}
    return new_event(
        TicketUpdated(
            id=str(state["_id"]),
            version=ticket["version"] + 1,
            title=state["title"],
            price=_price(state),
            user_id=state["userId"],
            order_id=state["orderId"],
        )
    )


async def create_ticket(db: Any, *, title: str, price_cents: int, user_id: str) -> Document:
    """Insert the ticket and its ticket:created event in one write."""
    ticket_id = ObjectId()
    doc: Document = {
        "_id": ticket_id,
        "title": title,
        "priceCents": price_cents,
        "userId": user_id,
        "version": 0,
        "orderId": None,
        RELEASED: [],
        "createdAt": datetime.now(UTC),
    }
    event = new_event(
        TicketCreated(id=str(ticket_id), version=0, title=title, price=_price(doc), user_id=user_id)
    )
    doc.update(outbox_fields(event))
    await db[TICKETS].insert_one(doc)
    return doc


async def get_ticket(db: Any, *, ticket_id: str) -> Document | None:
    """The ticket, or None for an unknown or malformed id."""
    oid = parse_object_id(ticket_id)
    if oid is None:
        return None
    doc: Document | None = await db[TICKETS].find_one({"_id": oid})
    return doc


async def list_unreserved(db: Any, *, limit: int, before: ObjectId | None) -> list[Document]:
    """Unreserved tickets, newest first, older than the `before` cursor when given."""
    query: Document = dict(UNRESERVED)
    if before is not None:
        query["_id"] = {"$lt": before}
    cursor = db[TICKETS].find(query).sort("_id", -1).limit(limit)
    return [doc async for doc in cursor]


async def edit_ticket(
    db: Any, *, ticket: Document, title: str, price_cents: int
) -> Document | None:
    """Set title and price if the ticket is still at the version read and unreserved; else None."""
    event = _updated_event(ticket, title=title, priceCents=price_cents)
    return await versioned_update(
        db[TICKETS],
        id=ticket["_id"],
        version=ticket["version"],
        update=with_outbox({"$set": {"title": title, "priceCents": price_cents}}, event),
        extra_filter=UNRESERVED,
    )


async def reserve_ticket(db: Any, *, ticket: Document, order_id: str) -> Document | None:
    """Reserve the free ticket for `order_id`; None if it changed since it was read."""
    event = _updated_event(ticket, orderId=order_id)
    # Recording a cancelled order does not bump the version (it is not a change other services
    # see), so the version alone would not notice one: the list's size does, as it only grows.
    unchanged_releases = {RELEASED: {"$size": len(ticket.get(RELEASED) or [])}}
    return await versioned_update(
        db[TICKETS],
        id=ticket["_id"],
        version=ticket["version"],
        update=with_outbox({"$set": {"orderId": order_id}}, event),
        extra_filter={**UNRESERVED, **unchanged_releases},
    )


async def release_ticket(db: Any, *, ticket: Document, order_id: str) -> Document | None:
    """Free the ticket reserved by `order_id` and remember that order; None if it changed."""
    event = _updated_event(ticket, orderId=None)
    update = with_outbox({"$set": {"orderId": None}, "$addToSet": {RELEASED: order_id}}, event)
    return await versioned_update(
        db[TICKETS],
        id=ticket["_id"],
        version=ticket["version"],
        update=update,
        extra_filter={"orderId": order_id},
    )


async def remember_released(db: Any, *, ticket: Document, order_id: str) -> bool:
    """Record a cancelled order that does not hold the ticket; False if the ticket changed."""
    result = await db[TICKETS].update_one(
        {"_id": ticket["_id"], "version": ticket["version"]},
        {"$addToSet": {RELEASED: order_id}},
    )
    return bool(result.matched_count == 1)
