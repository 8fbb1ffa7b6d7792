"""The orders replica (from order events) and the payments collection.

The payments collection holds at most one document per order (a unique index): its payment, or
the record that its window to pay closed without one (`close_window`). That index is the one
decision point between a payment accepted at the last moment and the order's expiry: of the
payment's insert and the closing's, exactly one succeeds, each with its own event in the same
write (payment:created, for orders to complete the order; payment:window-closed, for orders to
cancel it). So a payment answered 201 always completes its order, however long an outage
delays either event, and an order cancelled on expiry was never paid.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, NotRequired, TypedDict

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import OrderStatus, PaymentCreated, PaymentWindowClosed, new_event
from ticketing_common.mongo import Database, IndexSpec, collection, versioned_update
from ticketing_common.outbox import Outbox, Outboxed
from ticketing_common.telemetry.tracing import TraceCarrier, carrier

ORDERS = "orders"
PAYMENTS = "payments"

INDEXES = [
    # At most one payment per order, whatever races: the database decides (flaw 4); and a
    # closed window takes the same place, so a payment and a closing never both happen.
    IndexSpec(PAYMENTS, [("orderId", 1)], {"unique": True, "name": "orderId_unique"}),
    # The overdue sweep (`windows.sweep_once`): open orders by how long ago they ran out.
    IndexSpec(ORDERS, [("status", 1), ("expiresAt", 1)], {"name": "status_expires"}),
]

# The status of the document that closes an order's window: not a payment (no money at all).
WINDOW_CLOSED: Literal["window-closed"] = "window-closed"

# What became of an order's window to pay, as the replica remembers it once decided (the
# payments collection decides; this only keeps the sweep from asking again).
Window = Literal["paid", "closed"]


class PaymentStatus(StrEnum):
    """A payment's money: held on the card, then taken or released as orders decided."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"


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
    # A payment attempt's lease on the order (see `paying.lease_order`): until when (epoch
    # seconds), and its id.
    payingUntil: NotRequired[float | None]
    payingLease: NotRequired[str | None]
    # The order's one PaymentIntent, once an attempt made it (`paying.set_payment_intent`),
    # and whether it was canceled because the order was (see `mark_voided`).
    paymentIntentId: NotRequired[str | None]
    paymentIntentCanceled: NotRequired[bool]
    # The trace context of the order's order:created here: paying continues the order's trace.
    _trace: NotRequired[TraceCarrier]
    # Set once the order's window is decided (see `mark_window`); absent while it is open.
    window: NotRequired[Window]


class PaymentDoc(Outboxed):
    """A document of `payments`: at most one per order."""

    _id: ObjectId
    orderId: str
    # The Stripe PaymentIntent's id.
    stripeId: str
    amountCents: int
    currency: str
    # A PaymentStatus value.
    status: str
    createdAt: datetime
    # When it was settled (a datetime, or its string as nx-27017 reads a $set one back).
    capturedAt: datetime | str | None
    voidedAt: datetime | str | None


class WindowClosedDoc(Outboxed):
    """A document of `payments` that is no payment: the order's time to pay ran out without
    one, and none will ever be accepted (see the module's docstring)."""

    _id: ObjectId
    orderId: str
    status: Literal["window-closed"]
    # Why: "expired" (expiration's event) or "overdue" (payments' own sweep).
    reason: str
    closedAt: datetime


def orders_replica(db: Database) -> AsyncCollection[OrderReplicaDoc]:
    """The orders replica, typed (for `paying`, which holds its lease fields)."""
    return collection(db, ORDERS, OrderReplicaDoc)


def _payments(db: Database) -> AsyncCollection[PaymentDoc]:
    return collection(db, PAYMENTS, PaymentDoc)


# --- the orders replica --------------------------------------------------------------------------


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
        # A payment attempt's lease on the order (see `paying.lease_order`).
        "payingUntil": None,
        "payingLease": None,
        # The order's one PaymentIntent, once an attempt made it (`paying.set_payment_intent`),
        # and whether it was canceled because the order was (see `mark_voided`).
        "paymentIntentId": None,
        "paymentIntentCanceled": False,
        "_trace": carrier(),
    }
    try:
        await orders_replica(db).insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def get_order(db: Database, *, order_id: str) -> OrderReplicaDoc | None:
    return await orders_replica(db).find_one({"_id": order_id})


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
        orders_replica(db),
        id=order_id,
        version=version - 1,
        update={"$set": {"status": status.value}},
    )


def lease_held(order: OrderReplicaDoc, *, now: datetime | None = None) -> bool:
    """Whether a payment attempt holds the order right now (see `paying.lease_order`)."""
    until = order.get("payingUntil")
    return until is not None and float(until) > (now or datetime.now(UTC)).timestamp()


# --- payments ------------------------------------------------------------------------------------


async def get_payment_for_order(db: Database, *, order_id: str) -> PaymentDoc | None:
    """The order's payment; None when it has none (its window may have closed: `window_closed`)."""
    doc = await _payments(db).find_one({"orderId": order_id})
    return None if doc is None or doc["status"] == WINDOW_CLOSED else doc


async def window_of(db: Database, *, order_id: str) -> Window | None:
    """How the order's window was decided: "paid", "closed" (without a payment), or None while
    it is open. Read from the payments collection, which decides (one indexed read)."""
    doc = await _payments(db).find_one({"orderId": order_id}, {"status": 1})
    if doc is None:
        return None
    return "closed" if doc["status"] == WINDOW_CLOSED else "paid"


async def window_closed(db: Database, *, order_id: str) -> bool:
    """Whether the order's window to pay has closed without a payment."""
    return await window_of(db, order_id=order_id) == "closed"


async def close_window(outbox: Outbox, *, order_id: str, reason: str) -> bool:
    """Close the order's window to pay, with payment:window-closed in the same write; False
    when the order already has its document here (a payment, which wins, or an earlier close).
    """
    event = new_event(PaymentWindowClosed(order_id=order_id))
    doc: WindowClosedDoc = {
        "_id": ObjectId(),
        "orderId": order_id,
        "status": WINDOW_CLOSED,
        "reason": reason,
        "closedAt": datetime.now(UTC),
    }
    try:
        await outbox.collection(PAYMENTS, WindowClosedDoc).insert_one(doc, event)
    except DuplicateKeyError:
        return False
    return True


async def mark_window(db: Database, *, order_id: str, window: Window) -> None:
    """Remember on the replica how the order's window was decided (so the sweep skips it)."""
    await orders_replica(db).update_one({"_id": order_id}, {"$set": {"window": window}})


async def overdue_orders(db: Database, *, cutoff: datetime, limit: int) -> list[str]:
    """Open orders whose window is undecided and whose time ran out before `cutoff`, earliest
    first: one indexed (status, expiresAt) range on every backend."""
    query = {
        "status": OrderStatus.CREATED.value,
        "expiresAt": {"$lt": cutoff},
        "window": {"$exists": False},
    }
    cursor = orders_replica(db).find(query, {"_id": 1}).sort("expiresAt", 1).limit(limit)
    return [doc["_id"] async for doc in cursor]


async def create_payment(
    outbox: Outbox, *, order_id: str, stripe_id: str, amount_cents: int, currency: str
) -> PaymentDoc:
    """Insert the order's authorized payment, with its payment:created event in the same write.

    DuplicateKeyError when the order already has a payment.
    """
    payment_id = ObjectId()
    event = new_event(PaymentCreated(id=str(payment_id), order_id=order_id, stripe_id=stripe_id))
    doc: PaymentDoc = {
        "_id": payment_id,
        "orderId": order_id,
        "stripeId": stripe_id,
        "amountCents": amount_cents,
        "currency": currency,
        "status": PaymentStatus.AUTHORIZED.value,
        "createdAt": datetime.now(UTC),
        "capturedAt": None,
        "voidedAt": None,
    }
    return await outbox.collection(PAYMENTS, PaymentDoc).insert_one(doc, event)


async def mark_captured(db: Database, *, order_id: str) -> bool:
    """Record that the order's authorization was captured; False if already recorded."""
    return await _settled(db, order_id=order_id, status=PaymentStatus.CAPTURED, at="capturedAt")


async def mark_voided(db: Database, *, order_id: str) -> None:
    """Record that the order's PaymentIntent was canceled: its payment (if it got that far) is
    voided, and the replica remembers, so a redelivered order:cancelled asks Stripe nothing.

    The payment first: a crash between the two writes leaves the replica unmarked, and the
    next delivery voids (a replay at Stripe) and marks again.
    """
    await _settled(db, order_id=order_id, status=PaymentStatus.VOIDED, at="voidedAt")
    await orders_replica(db).update_one(
        {"_id": order_id}, {"$set": {"paymentIntentCanceled": True}}
    )


async def _settled(
    db: Database, *, order_id: str, status: PaymentStatus, at: Literal["capturedAt", "voidedAt"]
) -> bool:
    # Only from authorized: a payment is settled once, one way.
    doc = await _payments(db).find_one_and_update(
        {"orderId": order_id, "status": PaymentStatus.AUTHORIZED.value},
        {"$set": {"status": status.value, at: datetime.now(UTC)}},
    )
    return doc is not None
