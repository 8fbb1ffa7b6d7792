"""Payments' replica of orders, kept from order events, and payments' own fields on it: a
payment attempt's lease, the order's one PaymentIntent, and how its window to pay was decided.
Its documents, its index, and every read and write of it.

The order owner's fields (status, version) come only from order events, a version at a time.
Nothing here decides: the listeners, paying (`paying`), settling (`settle`) and the windows to
pay (`windows`) decide, and call one of these functions for each write.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import NotRequired, TypedDict

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import OrderStatus
from ticketing_common.mongo import Database, IndexSpec, collection, versioned_update
from ticketing_common.telemetry.tracing import TraceCarrier, carrier
from ticketing_payments.repository import Window

ORDERS = "orders"

INDEXES = [
    # The overdue sweep (`windows.sweep_once`): open orders by how long ago they ran out.
    IndexSpec(ORDERS, [("status", 1), ("expiresAt", 1)], {"name": "status_expires"}),
]


class OrderReplicaDoc(TypedDict):
    """A document of payments' `orders`: the order as its events told, and payments' own
    fields about paying for it."""

    # The orders service's id of the order.
    _id: str
    userId: str
    # An OrderStatus value.
    status: str
    version: int
    priceCents: int
    # A datetime; nx-27017 may read one back as a string (see `mongo.as_utc`).
    expiresAt: datetime | str
    # A payment attempt's lease on the order (see `lease_order`): until when (epoch seconds),
    # and its id.
    payingUntil: NotRequired[float | None]
    payingLease: NotRequired[str | None]
    # The order's one PaymentIntent, once an attempt made it (`set_payment_intent`), and
    # whether it was canceled because the order was (see `mark_intent_canceled`).
    paymentIntentId: NotRequired[str | None]
    paymentIntentCanceled: NotRequired[bool]
    # The trace context of the order's order:created here: paying continues the order's trace.
    _trace: NotRequired[TraceCarrier]
    # Set once the order's window is decided (see `mark_window`); absent while it is open.
    window: NotRequired[Window]


def _orders(db: Database) -> AsyncCollection[OrderReplicaDoc]:
    return collection(db, ORDERS, OrderReplicaDoc)


# --- the order as its events tell it ---------------------------------------------------------


async def insert_order(
    db: Database,
    *,
    order_id: str,
    user_id: str,
    status: str,
    version: int,
    price_cents: int,
    expires_at: datetime,
) -> bool:
    """Add an order to the replica; False when it is already there (a duplicate event)."""
    doc: OrderReplicaDoc = {
        "_id": order_id,
        "userId": user_id,
        "status": status,
        "version": version,
        "priceCents": price_cents,
        "expiresAt": expires_at,
        # A payment attempt's lease on the order (see `lease_order`).
        "payingUntil": None,
        "payingLease": None,
        # The order's one PaymentIntent, once an attempt made it (`set_payment_intent`), and
        # whether it was canceled because the order was (see `mark_intent_canceled`).
        "paymentIntentId": None,
        "paymentIntentCanceled": False,
        "_trace": carrier(),
    }
    try:
        await _orders(db).insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def get_order(db: Database, *, order_id: str) -> OrderReplicaDoc | None:
    return await _orders(db).find_one({"_id": order_id})


async def cancel_order(db: Database, *, order_id: str, version: int) -> OrderReplicaDoc | None:
    """Apply an order:cancelled of `version` if the replica is at `version - 1`; else None."""
    return await _set_status(db, order_id=order_id, version=version, status=OrderStatus.CANCELLED)


async def complete_order(db: Database, *, order_id: str, version: int) -> OrderReplicaDoc | None:
    """Apply an order:completed of `version` if the replica is at `version - 1`; else None."""
    return await _set_status(db, order_id=order_id, version=version, status=OrderStatus.COMPLETE)


async def _set_status(
    db: Database, *, order_id: str, version: int, status: OrderStatus
) -> OrderReplicaDoc | None:
    return await versioned_update(
        _orders(db),
        id=order_id,
        version=version - 1,
        update={"$set": {"status": status.value}},
    )


# --- a payment attempt's lease and PaymentIntent (see `paying`) ------------------------------


def lease_held(order: OrderReplicaDoc, *, now: datetime | None = None) -> bool:
    """Whether a payment attempt holds the order right now (see `lease_order`)."""
    until = order.get("payingUntil")
    return until is not None and float(until) > (now or datetime.now(UTC)).timestamp()


async def lease_order(
    db: Database, *, order_id: str, seconds: float, now: datetime | None = None
) -> tuple[str, OrderReplicaDoc] | None:
    """Hold the order for one payment attempt: (lease id, order), or None if another holds it.

    One atomic conditional update, so of two concurrent attempts (a double click) exactly one
    gets the lease. It expires on its own, so a crashed attempt cannot block the order forever.
    """
    now = now or datetime.now(UTC)
    lease = uuid.uuid4().hex
    # Epoch seconds, not a datetime: nx-27017 stores a datetime written by $set as a string,
    # which a range query would never match, so a crashed attempt's lease would never expire.
    doc = await _orders(db).find_one_and_update(
        {
            "_id": order_id,
            "$or": [{"payingUntil": None}, {"payingUntil": {"$lte": now.timestamp()}}],
        },
        {"$set": {"payingUntil": now.timestamp() + seconds, "payingLease": lease}},
        return_document=ReturnDocument.AFTER,
    )
    return (lease, doc) if doc is not None else None


async def release_order(db: Database, *, order_id: str, lease: str) -> None:
    """End the attempt's lease on the order."""
    # Matched on the lease id, so an attempt that outlived its lease cannot free another's.
    await _orders(db).update_one(
        {"_id": order_id, "payingLease": lease},
        {"$set": {"payingUntil": None, "payingLease": None}},
    )


async def set_payment_intent(db: Database, *, order_id: str, payment_intent_id: str) -> None:
    """Remember the order's PaymentIntent before confirming it.

    So that a cancellation finds, and voids, an authorization whose answer never reached us.
    """
    await _orders(db).update_one(
        {"_id": order_id}, {"$set": {"paymentIntentId": payment_intent_id}}
    )


async def mark_intent_canceled(db: Database, *, order_id: str) -> None:
    """Remember that the order's PaymentIntent was canceled (see `settle.void`), so a
    redelivered order:cancelled asks Stripe nothing."""
    await _orders(db).update_one({"_id": order_id}, {"$set": {"paymentIntentCanceled": True}})


# --- the window to pay (see `windows`) -------------------------------------------------------


async def mark_window(db: Database, *, order_id: str, window: Window) -> None:
    """Remember how the order's window was decided (so the sweep skips it)."""
    await _orders(db).update_one({"_id": order_id}, {"$set": {"window": window}})


async def overdue_orders(db: Database, *, cutoff: datetime, limit: int) -> list[str]:
    """Open orders whose window is undecided and whose time ran out before `cutoff`, earliest
    first: one indexed (status, expiresAt) range on every backend."""
    query = {
        "status": OrderStatus.CREATED.value,
        "expiresAt": {"$lt": cutoff},
        "window": {"$exists": False},
    }
    cursor = _orders(db).find(query, {"_id": 1}).sort("expiresAt", 1).limit(limit)
    return [doc["_id"] async for doc in cursor]
