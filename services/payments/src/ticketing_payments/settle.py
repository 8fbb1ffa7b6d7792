"""Settling an order's authorization once orders has decided its fate.

Payments only authorizes the card (see `charges`); orders alone decides whether the order is
complete or cancelled, and payments follows: on order:completed it captures the authorization,
on order:cancelled it voids it. Orders changes an open order once, one way, so an order's money
is either captured or released, never both, and never taken for a cancelled order.

Both are idempotent: the payment records how it was settled, and Stripe gets one idempotency key
per order for the capture and one for the void, so a redelivered or duplicated event, or a retry
after a lost answer, replays Stripe's first answer instead of acting twice.

An authorization that is neither captured nor voided does not hold the buyer's money forever:
every order ends complete or cancelled (expiration fires after `expiresAt`, and orders cancels
open orders past it by itself), and Stripe itself releases an uncaptured PaymentIntent after
7 days should every event about it be lost.
"""

from __future__ import annotations

import logging

from ticketing_common.bus import RetryLater
from ticketing_common.mongo import Database
from ticketing_payments import replica, repository
from ticketing_payments.charges import CANCELED, PROCESSING, SUCCEEDED, StripeCharger
from ticketing_payments.replica import OrderReplicaDoc
from ticketing_payments.repository import PaymentDoc, PaymentStatus

log = logging.getLogger("ticketing.payments.settle")


class SettlementError(Exception):
    """Stripe's state contradicts orders' decision (e.g. an authorization of a complete order
    expired uncaptured): no retry can fix it, so the event fails until it is dead-lettered, for
    a person to look at."""


async def capture_completed_order(
    db: Database, charger: StripeCharger, order: OrderReplicaDoc
) -> None:
    """Capture the complete order's authorization; nothing if already captured. Idempotent.

    Raises DependencyUnavailable while Stripe is down and RetryLater while the payment is still
    processing: either way the event is delivered again.
    """
    order_id = order["_id"]
    payment = await repository.get_payment_for_order(db, order_id=order_id)
    if payment is None:
        # Orders completes an order only on our payment:created, which is written with the
        # payment: without it, this replica and orders disagree.
        raise SettlementError(f"order {order_id} is complete but has no payment here")
    if payment["status"] == PaymentStatus.CAPTURED:
        return
    status = await charger.capture(order_id=order_id, intent_id=payment["stripeId"])
    if status == PROCESSING:
        raise RetryLater(f"the payment of order {order_id} is still processing")
    if status != SUCCEEDED:
        log.error(
            "authorization of a complete order cannot be captured",
            extra={"order_id": order_id, "payment_intent": payment["stripeId"], "status": status},
        )
        raise SettlementError(f"order {order_id} is complete; its PaymentIntent is {status}")
    if await repository.mark_captured(db, order_id=order_id):
        log.info("payment captured", extra={"order_id": order_id})


async def void_cancelled_order(
    db: Database, charger: StripeCharger, order: OrderReplicaDoc
) -> None:
    """Release the cancelled order's authorization, if it has one. Idempotent.

    Raises RetryLater while a payment attempt holds the order: until it ends, whether (and
    with which PaymentIntent) it authorized the card is not known.
    """
    if replica.lease_held(order):
        raise RetryLater(f"a payment attempt on order {order['_id']} is still running")
    payment = await repository.get_payment_for_order(db, order_id=order["_id"])
    await void(db, charger, order, payment)


async def void(
    db: Database, charger: StripeCharger, order: OrderReplicaDoc, payment: PaymentDoc | None
) -> None:
    """Cancel the order's PaymentIntent and record it; nothing if there is none, or it is done.

    The PaymentIntent is canceled whatever it holds: an authorization is released, and one
    never confirmed (declined, or its attempt's answer lost) can no longer be confirmed by an
    attempt that outlived its lease. Then its payment (if it got that far) is marked voided,
    and the replica remembers, so a redelivered order:cancelled asks Stripe nothing: the
    payment first, so a crash between the two writes leaves the replica unmarked, and the next
    delivery voids (a replay at Stripe) and marks again.
    """
    order_id = order["_id"]
    intent_id = payment["stripeId"] if payment is not None else order.get("paymentIntentId")
    if intent_id is None:
        return  # no attempt ever reached Stripe: nothing is held
    if order.get("paymentIntentCanceled") or (
        payment is not None and payment["status"] == PaymentStatus.VOIDED
    ):
        return
    status = await charger.void(order_id=order_id, intent_id=intent_id)
    if status == PROCESSING:
        raise RetryLater(f"the payment of order {order_id} is still processing")
    if status != CANCELED:
        # Captured: only order:completed captures, and orders never cancels a complete order.
        log.error(
            "a cancelled order's payment was captured",
            extra={"order_id": order_id, "payment_intent": intent_id, "status": status},
        )
        raise SettlementError(f"order {order_id} is cancelled; its PaymentIntent is {status}")
    await repository.mark_voided(db, order_id=order_id)
    await replica.mark_intent_canceled(db, order_id=order_id)
    log.info("authorization voided", extra={"order_id": order_id, "payment_intent": intent_id})
