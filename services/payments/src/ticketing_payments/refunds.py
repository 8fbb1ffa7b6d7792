"""Money back for an order cancelled after, or while, it was paid.

An order can be cancelled with its payment under way or just made: the expiry fires during a slow
charge, or the buyer's DELETE lands while payment:created is still in our outbox. Orders keeps
such an order cancelled (a cancelled order never becomes complete), so the money must go back.
Two parties can see both facts, and either refunds: the order:cancelled handler, which waits for a
running payment attempt to end so that it sees how the attempt ended, and the attempt itself when
it finds the order cancelled once its payment is stored. Stripe gets one idempotency key per
order's refund, so however often and by whom it is asked, an order is refunded once.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import DuplicateKeyError

from ticketing_common.bus import RetryLater
from ticketing_common.mongo import Document
from ticketing_payments import repository
from ticketing_payments.charges import CURRENCY, PROCESSING, SUCCEEDED, StripeCharger

log = logging.getLogger("ticketing.payments.refunds")


async def settle_cancelled_order(db: Any, charger: StripeCharger, order: Document) -> None:
    """Refund the cancelled order's payment if it was paid; nothing otherwise. Idempotent.

    Raises RetryLater while a payment attempt holds the order (its outcome is not known yet), and
    Stripe's errors as they are: either way the event is delivered again.
    """
    order_id = order["_id"]
    if repository.lease_held(order):
        raise RetryLater(f"a payment attempt on order {order_id} is still running")
    payment = await repository.get_payment_for_order(db, order_id=order_id)
    if payment is None:
        payment = await _record_unanswered_charge(db, charger, order)
        if payment is None:
            return
    await refund_payment(db, charger, payment)


async def refund_payment(db: Any, charger: StripeCharger, payment: Document) -> None:
    """Refund the payment in full and record it; nothing if that is already recorded."""
    if payment.get("refundId"):
        return
    refund_id = await charger.refund(order_id=payment["orderId"], intent_id=payment["stripeId"])
    if await repository.mark_refunded(db, payment_id=payment["_id"], refund_id=refund_id):
        log.warning(
            "payment of a cancelled order refunded",
            extra={"order_id": payment["orderId"], "refund": refund_id},
        )


async def _record_unanswered_charge(
    db: Any, charger: StripeCharger, order: Document
) -> Document | None:
    """The payment of a charge whose answer never reached us (the buyer got a 502), if any."""
    intent_id = order.get("paymentIntentId")
    if not intent_id:
        return None  # no attempt ever reached Stripe
    status = await charger.intent_status(intent_id)
    if status == PROCESSING:
        raise RetryLater(f"the payment of order {order['_id']} is still processing")
    if status != SUCCEEDED:
        return None  # declined, or never confirmed: nothing was taken
    try:
        # Without payment:created: nothing is to complete a cancelled order.
        return await repository.create_payment(
            db,
            order_id=order["_id"],
            stripe_id=intent_id,
            amount_cents=order["priceCents"],
            currency=CURRENCY,
            publish=False,
        )
    except DuplicateKeyError:
        return await repository.get_payment_for_order(db, order_id=order["_id"])
