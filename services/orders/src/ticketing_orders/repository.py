"""Orders' own collections, `orders` and `buyers`: their documents, their indexes, and every
read and write of them.

Nothing here decides: the state machine (`state`), the reservation protocol (`reservations`)
and the cap on open orders (`buyers`) decide, and call one of these functions for each write.
Every write is one single-document operation, conditional wherever another writer could race
it; a change other services must hear of stores its event in the same write (the outbox), so the
event exists exactly when the change does.
"""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import (
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    OrderTicketRef,
    TicketRef,
    new_event,
)
from ticketing_common.money import to_dollars
from ticketing_common.mongo import Database, Document, IndexSpec, collection, parse_object_id
from ticketing_common.outbox import Outbox, OutboxCollection, Outboxed, strip_outbox

ORDERS = "orders"
BUYERS = "buyers"


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


class BuyerDoc(TypedDict):
    """A document of `buyers`: the places a buyer's open orders hold (see `buyers`)."""

    # The user's id.
    _id: str
    # The orders (ids) holding the buyer's places: every open order is here, and maybe orders
    # that ended since (see `buyers`).
    openOrders: list[str]
    # len(openOrders), kept in the same writes: the condition a place is taken on (nx-27017
    # cannot test an array's size or index against a bound).
    count: int


INDEXES = [
    IndexSpec(ORDERS, [("userId", 1), ("_id", -1)], {"name": "user_newest_first"}),
    # The sweep of unconfirmed reservations: open orders by how long ago they ran out.
    IndexSpec(ORDERS, [("status", 1), ("expiresAt", 1)], {"name": "status_expires"}),
]

# Statuses in which an order holds its ticket and may still be cancelled or paid.
OPEN_STATUSES = [OrderStatus.CREATED.value, OrderStatus.AWAITING_PAYMENT.value]

# Orders that exist for their buyer: confirmed, or written before confirmation existed.
VISIBLE: Document = {"confirmed": {"$ne": False}}


def _orders(db: Database) -> AsyncCollection[OrderDoc]:
    return collection(db, ORDERS, OrderDoc)


def _outboxed(outbox: Outbox) -> OutboxCollection[OrderDoc]:
    """The orders collection's writes that carry events, typed."""
    return outbox.collection(ORDERS, OrderDoc)


def _buyers(db: Database) -> AsyncCollection[BuyerDoc]:
    return collection(db, BUYERS, BuyerDoc)


# --- orders: reads --------------------------------------------------------------------------


async def get_order(db: Database, *, order_id: ObjectId) -> OrderDoc | None:
    """The order as its buyer may see it: None unless it is visible (see VISIBLE)."""
    doc = await _orders(db).find_one({"_id": order_id, **VISIBLE})
    return strip_outbox(doc) if doc is not None else None


async def list_orders(
    db: Database, *, user_id: str, limit: int, before: ObjectId | None = None
) -> list[OrderDoc]:
    """The user's orders, newest first (`_id` order), optionally those older than `before`."""
    query: Document = {"userId": user_id, **VISIBLE}
    if before is not None:
        query["_id"] = {"$lt": before}
    cursor = _orders(db).find(query).sort("_id", -1).limit(limit)
    return [strip_outbox(doc) async for doc in cursor]


async def get_holder(db: Database, *, order_id: ObjectId) -> OrderDoc | None:
    """The order, confirmed or not: a ticket's holder as the reservation protocol sees it."""
    return await _orders(db).find_one({"_id": order_id})


async def open_among(db: Database, *, order_ids: list[str]) -> set[str]:
    """Those of `order_ids` that are open orders (not ended, withdrawn, or not ours at all)."""
    oids = [oid for oid in map(parse_object_id, order_ids) if oid is not None]
    cursor = _orders(db).find({"_id": {"$in": oids}}, {"status": 1}).limit(len(oids))
    return {str(d["_id"]) async for d in cursor if d["status"] in OPEN_STATUSES}


async def unconfirmed_before(db: Database, *, older_than: datetime, limit: int) -> list[OrderDoc]:
    """Up to `limit` orders that never confirmed and ran out before `older_than` (their `_id`
    and `ticketId` only)."""
    # An unconfirmed order is always `created` (it is never cancelled, only withdrawn): the
    # status makes this the same indexed (status, expiresAt) range as the expiry sweep's.
    query = {
        "status": OrderStatus.CREATED.value,
        "expiresAt": {"$lt": older_than},
        "confirmed": False,
    }
    return [doc async for doc in _orders(db).find(query, {"ticketId": 1}).limit(limit)]


# --- orders: the reservation's writes (see `reservations.create_order`) ---------------------


async def insert_unconfirmed(
    outbox: Outbox, *, order_id: ObjectId, user_id: str, ticket_id: str, expires_at: datetime
) -> None:
    """Step 1 of a reservation: the order, inserted unconfirmed (invisible, announcing
    nothing, holding nothing)."""
    # With an empty outbox (the outbox adds it): the confirmation appends order:created to it.
    await _outboxed(outbox).insert_one(
        {
            "_id": order_id,
            "userId": user_id,
            "status": OrderStatus.CREATED.value,
            "expiresAt": expires_at,
            "version": 0,
            "ticketId": ticket_id,
            "confirmed": False,
        }
    )


async def confirm(
    outbox: Outbox,
    *,
    order_id: ObjectId,
    user_id: str,
    ticket_id: str,
    expires_at: datetime,
    price_cents: int,
) -> OrderDoc | None:
    """Step 4 of a reservation: the compare-and-set `confirmed: False -> True`, which stores
    the price the buyer was shown and order:created in the same write; the order, or None if
    it was withdrawn first (`withdraw_unconfirmed`)."""
    event = new_event(
        OrderCreated(
            id=str(order_id),
            version=0,
            status=OrderStatus.CREATED,
            user_id=user_id,
            expires_at=expires_at,
            ticket=OrderTicketRef(id=ticket_id, price=to_dollars(price_cents)),
        )
    )
    order = await _outboxed(outbox).find_one_and_update(
        {"_id": order_id, "confirmed": False},
        {"$set": {"confirmed": True, "priceCents": price_cents}},
        event,
    )
    return strip_outbox(order) if order is not None else None


async def withdraw_unconfirmed(db: Database, *, order_id: ObjectId) -> bool:
    """The withdrawal of a reservation: delete an order that has not confirmed; False if it
    confirmed first.

    The compare-and-set opposite to `confirm`: of `confirmed: False -> True` and this delete,
    one matches, never both.
    """
    result = await _orders(db).delete_one({"_id": order_id, "confirmed": False})
    return bool(result.deleted_count == 1)


# --- orders: the state machine's writes (see `state`) ---------------------------------------


async def mark_cancelled(outbox: Outbox, *, order: OrderDoc) -> OrderDoc | None:
    """`state.cancel_order`'s write: the open order, at the version read, becomes cancelled,
    with order:cancelled in the same write; the order after, or None if it changed since."""
    updated = await _end(outbox, order=order, ended=OrderCancelled, status=OrderStatus.CANCELLED)
    return strip_outbox(updated) if updated is not None else None


async def mark_complete(outbox: Outbox, *, order: OrderDoc) -> bool:
    """`state.complete_order`'s write: the open order, at the version read, becomes complete,
    with order:completed in the same write; False if it changed since."""
    updated = await _end(outbox, order=order, ended=OrderCompleted, status=OrderStatus.COMPLETE)
    return updated is not None


async def _end(
    outbox: Outbox,
    *,
    order: OrderDoc,
    ended: type[OrderCancelled] | type[OrderCompleted],
    status: OrderStatus,
) -> OrderDoc | None:
    """The open order, at the version read, ends in `status`, with its `ended` event in the
    same write (once and one way: only an open order ends)."""
    event = new_event(
        ended(
            id=str(order["_id"]),
            version=order["version"] + 1,
            ticket=TicketRef(id=order["ticketId"]),
        )
    )
    return await _outboxed(outbox).versioned_update(
        event,
        id=order["_id"],
        version=order["version"],
        update={"$set": {"status": status.value}},
        extra_filter={"status": {"$in": OPEN_STATUSES}},
    )


# --- buyers: the places of their open orders (see `buyers`) ---------------------------------


async def get_buyer(db: Database, *, user_id: str) -> BuyerDoc | None:
    return await _buyers(db).find_one({"_id": user_id})


async def push_place(db: Database, *, user_id: str, order_id: ObjectId, limit: int) -> bool:
    """Give the order a place if the buyer holds fewer than `limit`; False if not (or the
    buyer has no document yet)."""
    taken = await _buyers(db).update_one(
        {"_id": user_id, "count": {"$lt": limit}},
        {"$push": {"openOrders": str(order_id)}, "$inc": {"count": 1}},
    )
    return bool(taken.matched_count == 1)


async def insert_buyer(db: Database, *, user_id: str, order_id: ObjectId) -> bool:
    """The buyer's document, with the order in its first place; False if it exists already."""
    try:
        await _buyers(db).insert_one({"_id": user_id, "openOrders": [str(order_id)], "count": 1})
    except DuplicateKeyError:
        return False
    return True


async def pull_places(db: Database, *, user_id: str, count: int, order_ids: list[str]) -> None:
    """Give back the places of `order_ids` if the buyer's list is still the one read (its
    `count` unchanged): then exactly these leave it, and the count stays the list's length."""
    await _buyers(db).update_one(
        {"_id": user_id, "count": count},
        {"$pull": {"openOrders": {"$in": order_ids}}, "$set": {"count": count - len(order_ids)}},
    )


async def pull_place(db: Database, *, user_id: str, count: int, order_id: ObjectId) -> bool:
    """Give back the order's place if the buyer's `count` is still the one read; False if not."""
    given = await _buyers(db).update_one(
        {"_id": user_id, "count": count},
        {"$pull": {"openOrders": str(order_id)}, "$inc": {"count": -1}},
    )
    return bool(given.matched_count == 1)
