"""The tickets collection: its documents, its index, and every read and write of it.

Nothing here decides: the owner's edit (`edits`) and the reservations from order events
(`listeners`) decide, and call one of these functions for each write. Every change is one
conditional single-document write that also stores its event (the outbox), conditioned on the
version read, so two writers can never both apply a change to the same version and the event
always describes exactly the state it was written with.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, NotRequired, TypedDict, Unpack

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from ticketing_common.events import Event, TicketCreated, TicketUpdated, new_event
from ticketing_common.money import to_dollars
from ticketing_common.mongo import (
    Database,
    Document,
    IndexSpec,
    as_utc,
    collection,
    parse_object_id,
)
from ticketing_common.outbox import Outbox, OutboxCollection, Outboxed

TICKETS = "tickets"

# Order ids whose order:cancelled has been applied. Kept because events of different subjects
# arrive in any order: an order:created arriving after its order:cancelled must not reserve.
# Each is kept with the time it was released, and only for twice NATS_RETRY_HORIZON_SECONDS: orders
# publishes an order:created before its order:cancelled, and the bus gives up on (dead-letters)
# an event kept waiting longer than the horizon, so an older entry has nothing left to stop.
# Every write that adds an entry drops those in the same write (before, the list only grew, and
# a ticket cancelled over and over reached Mongo's document size limit and stayed reserved: see
# BENCHMARKS.md, "Figures once quoted in the code").
RELEASED: Final = "releasedOrderIds"
# How many writes changed RELEASED: the compare-and-set token of the list, which each write
# replaces whole (pruning makes it shrink, so its size no longer tells whether it changed).
# Absent until a ticket's first release by this code.
RELEASES: Final = "releases"


class ReleasedBatch(TypedDict):
    """Orders released at `at`: one order, or (carried over from a list of plain ids, written
    before times were kept) orders released at the latest then."""

    ids: list[str]
    # A datetime; nx-27017 may read one back as a string (see `mongo.as_utc`).
    at: datetime | str


# A plain id is an entry written before release times were kept.
ReleasedEntry = str | ReleasedBatch


class TicketDoc(Outboxed):
    """A document of `tickets`."""

    _id: ObjectId
    title: str
    priceCents: int
    userId: str
    version: int
    # The order holding the ticket, None when it is free.
    orderId: str | None
    # See RELEASED; absent from a projection.
    releasedOrderIds: NotRequired[list[ReleasedEntry]]
    # See RELEASES.
    releases: NotRequired[int]
    createdAt: datetime
    # The id as a string (hex: ordered as the ids are): the listing's sort key and cursor.
    # Not `_id` itself because nx-27017 (the local stack's Mongo) cannot put `_id` in a compound
    # index, so sorting unreserved tickets by `_id` read them all there (see BENCHMARKS.md,
    # "Between 1eddfd6 and PREVIOUS"). Real MongoDB serves both alike. Absent from tickets
    # stored before it (`add_list_keys`).
    listKey: NotRequired[str]


class TicketChanges(TypedDict, total=False):
    """The fields a ticket:updated may change."""

    title: str
    priceCents: int
    orderId: str | None


def _tickets(db: Database) -> AsyncCollection[TicketDoc]:
    return collection(db, TICKETS, TicketDoc)


def _outboxed(outbox: Outbox) -> OutboxCollection[TicketDoc]:
    return outbox.collection(TICKETS, TicketDoc)


# The listing reads unreserved tickets newest first, from a cursor.
INDEXES = [IndexSpec(TICKETS, [("orderId", 1), ("listKey", -1)], {"name": "unreserved_newest"})]

# `$eq`, not a bare None: nx-27017 matches nothing for `{"orderId": None}` next to a range on
# another field; `$eq: None` means the same on every backend and uses the same index.
UNRESERVED: Document = {"orderId": {"$eq": None}}


def _price(doc: TicketDoc) -> float:
    return to_dollars(doc["priceCents"])


def _updated_event(ticket: TicketDoc, **changes: Unpack[TicketChanges]) -> Event[TicketUpdated]:
    """The ticket:updated of `ticket` after `changes` and one version bump."""
    state: TicketDoc = {**ticket, **changes}
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


async def create_ticket(outbox: Outbox, *, title: str, price_cents: int, user_id: str) -> TicketDoc:
    """Insert the ticket and its ticket:created event in one write."""
    ticket_id = ObjectId()
    doc: TicketDoc = {
        "_id": ticket_id,
        "title": title,
        "priceCents": price_cents,
        "userId": user_id,
        "version": 0,
        "orderId": None,
        RELEASED: [],
        "createdAt": datetime.now(UTC),
        "listKey": str(ticket_id),
    }
    event = new_event(
        TicketCreated(id=str(ticket_id), version=0, title=title, price=_price(doc), user_id=user_id)
    )
    return await _outboxed(outbox).insert_one(doc, event)


async def get_ticket(db: Database, *, ticket_id: str) -> TicketDoc | None:
    """The ticket, or None for an unknown or malformed id."""
    oid = parse_object_id(ticket_id)
    if oid is None:
        return None
    return await _tickets(db).find_one({"_id": oid})


async def list_unreserved(db: Database, *, limit: int, before: ObjectId | None) -> list[TicketDoc]:
    """Unreserved tickets, newest first, older than the `before` cursor when given."""
    query: Document = dict(UNRESERVED)
    if before is not None:
        query["listKey"] = {"$lt": str(before)}
    cursor = _tickets(db).find(query).sort("listKey", -1).limit(limit)
    return [doc async for doc in cursor]


async def add_list_keys(db: Database) -> int:
    """Give `listKey` to the tickets stored before it existed (at start: until then they are
    missing from the listing); how many were given one. Each write is the same idempotent
    `$set`, so two replicas starting together do no harm."""
    added = 0
    tickets = _tickets(db)
    async for doc in tickets.find({"listKey": {"$exists": False}}, {"_id": 1}):
        await tickets.update_one({"_id": doc["_id"]}, {"$set": {"listKey": str(doc["_id"])}})
        added += 1
    return added


async def edit_ticket(
    outbox: Outbox, *, ticket: TicketDoc, title: str, price_cents: int
) -> TicketDoc | None:
    """The owner's edit (`edits.update_ticket`): set title and price if the ticket is still at
    the version read and unreserved, with ticket:updated in the same write; else None."""
    event = _updated_event(ticket, title=title, priceCents=price_cents)
    return await _outboxed(outbox).versioned_update(
        event,
        id=ticket["_id"],
        version=ticket["version"],
        update={"$set": {"title": title, "priceCents": price_cents}},
        extra_filter=UNRESERVED,
    )


def released_ids(ticket: TicketDoc) -> set[str]:
    """The orders whose order:cancelled the ticket remembers, whichever format stored them."""
    ids: set[str] = set()
    for entry in ticket.get(RELEASED) or []:
        if isinstance(entry, str):
            ids.add(entry)
        else:
            ids.update(entry["ids"])
    return ids


def _unchanged_releases(ticket: TicketDoc) -> Document:
    """A filter matching the ticket only while RELEASED is as read.

    Recording a cancelled order does not bump the version (it is not a change other services
    see), so the version alone would not notice one. The token does; the size is checked too
    for a writer that appended a plain id without it (a process of the code before it, during
    a rolling update): such a list only grew.
    """
    released = ticket.get(RELEASED)
    size: Document = {"$exists": False} if released is None else {"$size": len(released)}
    token: Document | int = ticket.get(RELEASES, {"$exists": False})
    return {RELEASED: size, RELEASES: token}


def _with_released(
    ticket: TicketDoc, *, order_id: str, horizon: timedelta, now: datetime | None
) -> Document:
    """The `$set` that remembers `order_id` as released now and, in the same write, forgets
    what was released more than `horizon` ago (see RELEASED)."""
    now = now or datetime.now(UTC)
    kept: list[ReleasedEntry] = []
    plain: list[str] = []
    for entry in ticket.get(RELEASED) or []:
        if isinstance(entry, str):
            plain.append(entry)
        elif as_utc(entry["at"]) >= now - horizon:
            kept.append(entry)
    if plain:
        # When they were released is unknown, but not after now: kept one horizon from here.
        kept.insert(0, {"ids": plain, "at": now})
    kept.append({"ids": [order_id], "at": now})
    return {RELEASED: kept, RELEASES: ticket.get(RELEASES, 0) + 1}


async def reserve_ticket(outbox: Outbox, *, ticket: TicketDoc, order_id: str) -> TicketDoc | None:
    """Reserve the free ticket for `order_id`; None if it changed since it was read."""
    event = _updated_event(ticket, orderId=order_id)
    return await _outboxed(outbox).versioned_update(
        event,
        id=ticket["_id"],
        version=ticket["version"],
        update={"$set": {"orderId": order_id}},
        extra_filter={**UNRESERVED, **_unchanged_releases(ticket)},
    )


async def release_ticket(
    outbox: Outbox,
    *,
    ticket: TicketDoc,
    order_id: str,
    horizon: timedelta,
    now: datetime | None = None,
) -> TicketDoc | None:
    """Free the ticket reserved by `order_id` and remember that order (forgetting those
    released longer than `horizon` ago); None if it changed."""
    event = _updated_event(ticket, orderId=None)
    released = _with_released(ticket, order_id=order_id, horizon=horizon, now=now)
    return await _outboxed(outbox).versioned_update(
        event,
        id=ticket["_id"],
        version=ticket["version"],
        update={"$set": {"orderId": None, **released}},
        extra_filter={"orderId": order_id, **_unchanged_releases(ticket)},
    )


async def remember_released(
    db: Database,
    *,
    ticket: TicketDoc,
    order_id: str,
    horizon: timedelta,
    now: datetime | None = None,
) -> bool:
    """Record a cancelled order that does not hold the ticket (forgetting those released
    longer than `horizon` ago); False if the ticket changed."""
    released = _with_released(ticket, order_id=order_id, horizon=horizon, now=now)
    result = await _tickets(db).update_one(
        {"_id": ticket["_id"], "version": ticket["version"], **_unchanged_releases(ticket)},
        {"$set": released},
    )
    return bool(result.matched_count == 1)
