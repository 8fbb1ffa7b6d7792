"""The orders replica (from order events) and the payments collection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import OrderStatus, PaymentCreated, new_event
from ticketing_common.mongo import Document, IndexSpec, versioned_update
from ticketing_common.outbox import outbox_fields

ORDERS = "orders"
PAYMENTS = "payments"

INDEXES = [
    # At most one payment per order, whatever races: the database decides (flaw 4).
    IndexSpec(PAYMENTS, [("orderId", 1)], {"unique": True, "name": "orderId_unique"}),
]


class PaymentStatus(StrEnum):
    """A payment's money: held on the card, then taken or released as orders decided."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"


# --- the orders replica --------------------------------------------------------------------------


async def insert_order(
    db: Any,
    *,
    order_id: str,
    user_id: str,
    status: str,
    version: int,
    price_cents: int,
    expires_at: datetime,
) -> bool:
    """Add an order to the replica; False when it is already there (a duplicate event)."""
    doc: Document = {
        "_id": order_id,
        "userId": user_id,
        "status": status,
        "version": version,
        "priceCents": price_cents,
        "expiresAt": expires_at,
        # A payment attempt's lease on the order (see `lease_order`).
        "payingUntil": None,
        "payingLease": None,
        # The order's one PaymentIntent, once an attempt made it (see `set_payment_intent`),
        # and whether it was canceled because the order was (see `mark_voided`).
        "paymentIntentId": None,
        "paymentIntentCanceled": False,
    }
    try:
        await db[ORDERS].insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def get_order(db: Any, *, order_id: str) -> Document | None:
    doc: Document | None = await db[ORDERS].find_one({"_id": order_id})
    return doc


async def cancel_order(db: Any, *, order_id: str, version: int) -> Document | None:
    """Apply an order:cancelled of `version` if the replica is at `version - 1`; else None."""
    return await _set_status(db, order_id=order_id, version=version, status=OrderStatus.CANCELLED)


async def complete_order(db: Any, *, order_id: str, version: int) -> Document | None:
    """Apply an order:completed of `version` if the replica is at `version - 1`; else None."""
    return await _set_status(db, order_id=order_id, version=version, status=OrderStatus.COMPLETE)


async def _set_status(
    db: Any, *, order_id: str, version: int, status: OrderStatus
) -> Document | None:
    return await versioned_update(
        db[ORDERS], id=order_id, version=version - 1, update={"$set": {"status": status.value}}
    )


async def lease_order(
    db: Any, *, order_id: str, seconds: float, now: datetime | None = None
) -> tuple[str, Document] | None:
    """Hold the order for one payment attempt: (lease id, order), or None if another holds it.

    One atomic conditional update, so of two concurrent attempts (a double click) exactly one
    gets the lease. It expires on its own, so a crashed attempt cannot block the order forever.
    """
    now = now or datetime.now(UTC)
    lease = uuid.uuid4().hex
    # Epoch seconds, not a datetime: nx-27017 stores a datetime written by $set as a string,
    # which a range query would never match, so a crashed attempt's lease would never expire.
    doc: Document | None = await db[ORDERS].find_one_and_update(
        {
            "_id": order_id,
            "$or": [{"payingUntil": None}, {"payingUntil": {"$lte": now.timestamp()}}],
        },
        {"$set": {"payingUntil": now.timestamp() + seconds, "payingLease": lease}},
        return_document=ReturnDocument.AFTER,
    )
    return (lease, doc) if doc is not None else None


def lease_held(order: Document, *, now: datetime | None = None) -> bool:
    """Whether a payment attempt holds the order right now."""
    until = order.get("payingUntil")
    return until is not None and float(until) > (now or datetime.now(UTC)).timestamp()


async def set_payment_intent(db: Any, *, order_id: str, payment_intent_id: str) -> None:
    """Remember the order's PaymentIntent before confirming it.

    So that a cancellation finds, and voids, an authorization whose answer never reached us.
    """
    await db[ORDERS].update_one({"_id": order_id}, {"$set": {"paymentIntentId": payment_intent_id}})


async def release_order(db: Any, *, order_id: str, lease: str) -> None:
    # Matched on the lease id, so an attempt that outlived its lease cannot free another's.
    await db[ORDERS].update_one(
        {"_id": order_id, "payingLease": lease},
        {"$set": {"payingUntil": None, "payingLease": None}},
    )


# --- payments ------------------------------------------------------------------------------------


async def get_payment_for_order(db: Any, *, order_id: str) -> Document | None:
    doc: Document | None = await db[PAYMENTS].find_one({"orderId": order_id})
    return doc


async def create_payment(
    db: Any, *, order_id: str, stripe_id: str, amount_cents: int, currency: str
) -> Document:
    """Insert the order's authorized payment, with its payment:created event in the same write.

    DuplicateKeyError when the order already has a payment.
    """
    payment_id = ObjectId()
    event = new_event(PaymentCreated(id=str(payment_id), order_id=order_id, stripe_id=stripe_id))
    doc: Document = {
        "_id": payment_id,
        "orderId": order_id,
        "stripeId": stripe_id,
        "amountCents": amount_cents,
        "currency": currency,
        "status": PaymentStatus.AUTHORIZED.value,
        "createdAt": datetime.now(UTC),
        "capturedAt": None,
        "voidedAt": None,
        **outbox_fields(event),
    }
    await db[PAYMENTS].insert_one(doc)
    return doc


async def mark_captured(db: Any, *, order_id: str) -> bool:
    """Record that the order's authorization was captured; False if already recorded."""
    return await _settled(db, order_id=order_id, status=PaymentStatus.CAPTURED, at="capturedAt")


async def mark_voided(db: Any, *, order_id: str) -> None:
    """Record that the order's PaymentIntent was canceled: its payment (if it got that far) is
    voided, and the replica remembers, so a redelivered order:cancelled asks Stripe nothing.

    The payment first: a crash between the two writes leaves the replica unmarked, and the
    next delivery voids (a replay at Stripe) and marks again.
    """
    await _settled(db, order_id=order_id, status=PaymentStatus.VOIDED, at="voidedAt")
    await db[ORDERS].update_one({"_id": order_id}, {"$set": {"paymentIntentCanceled": True}})


async def _settled(db: Any, *, order_id: str, status: PaymentStatus, at: str) -> bool:
    # Only from authorized: a payment is settled once, one way.
    doc: Document | None = await db[PAYMENTS].find_one_and_update(
        {"orderId": order_id, "status": PaymentStatus.AUTHORIZED.value},
        {"$set": {"status": status.value, at: datetime.now(UTC)}},
    )
    return doc is not None
