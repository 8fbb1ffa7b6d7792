"""The payments collection: its documents, its index, and every read and write of it (the
orders replica is `replica`'s).

The payments collection holds at most one document per order (a unique index): its payment, or
the record that its window to pay closed without one (`close_window`). That index is the one
decision point between a payment accepted at the last moment and the order's expiry: of the
payment's insert and the closing's, exactly one succeeds, each with its own event in the same
write (payment:created, for orders to complete the order; payment:window-closed, for orders to
cancel it). So a payment answered 201 always completes its order, however long an outage
delays either event, and an order cancelled on expiry was never paid.

Nothing here decides: paying (`paying`), settling (`settle`) and the windows to pay (`windows`)
decide, and call one of these functions for each write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import PaymentCreated, PaymentWindowClosed, new_event
from ticketing_common.mongo import Database, IndexSpec, collection
from ticketing_common.outbox import Outbox, Outboxed

PAYMENTS = "payments"

INDEXES = [
    # At most one payment per order, whatever races: the database decides (flaw 4); and a
    # closed window takes the same place, so a payment and a closing never both happen.
    IndexSpec(PAYMENTS, [("orderId", 1)], {"unique": True, "name": "orderId_unique"}),
]

# The status of the document that closes an order's window: not a payment (no money at all).
WINDOW_CLOSED: Literal["window-closed"] = "window-closed"

# What became of an order's window to pay: decided here, and remembered on the replica once
# decided (`replica.mark_window`), which only keeps the sweep from asking again.
Window = Literal["paid", "closed"]


class PaymentStatus(StrEnum):
    """A payment's money: held on the card, then taken or released as orders decided."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"


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


def _payments(db: Database) -> AsyncCollection[PaymentDoc]:
    return collection(db, PAYMENTS, PaymentDoc)


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


async def mark_voided(db: Database, *, order_id: str) -> bool:
    """Record that the order's authorization was voided; False if the order has no authorized
    payment (the attempt never got that far, or it is recorded already)."""
    return await _settled(db, order_id=order_id, status=PaymentStatus.VOIDED, at="voidedAt")


async def _settled(
    db: Database, *, order_id: str, status: PaymentStatus, at: Literal["capturedAt", "voidedAt"]
) -> bool:
    # Only from authorized: a payment is settled once, one way.
    doc = await _payments(db).find_one_and_update(
        {"orderId": order_id, "status": PaymentStatus.AUTHORIZED.value},
        {"$set": {"status": status.value, at: datetime.now(UTC)}},
    )
    return doc is not None
