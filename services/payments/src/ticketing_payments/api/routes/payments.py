"""/api/payments: pay for an order with a card, through the order's one PaymentIntent."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from fastapi import APIRouter, status
from pymongo.errors import DuplicateKeyError

from ticketing_common.errors import BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.events import OrderStatus
from ticketing_common.mongo import Document, as_utc
from ticketing_payments import refunds, repository
from ticketing_payments.charges import CURRENCY, SUCCEEDED, StripeCharger
from ticketing_payments.deps import ChargerDep, CurrentUser, RuntimeDep, SettingsDep
from ticketing_payments.schemas import PaymentCreate, PaymentPublic
from ticketing_payments.settings import Settings

log = logging.getLogger("ticketing.payments")

router = APIRouter(prefix="/api/payments", tags=["payments"])

ALREADY_PAID = "Order has already been paid"
CANCELLED_WHILE_PAYING = "Order was cancelled during payment; the charge {} refunded"


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_payment(
    body: PaymentCreate,
    user: CurrentUser,
    runtime: RuntimeDep,
    settings: SettingsDep,
    charger: ChargerDep,
) -> PaymentPublic:
    """Charge the order's price to a card and publish payment:created."""
    db = runtime.db
    order = await repository.get_order(db, order_id=body.orderId)
    if order is None:
        raise NotFoundError()
    if order["userId"] != user.id:
        raise NotAuthorizedError()
    await _check_payable(db, order, settings)

    leased = await repository.lease_order(
        db, order_id=order["_id"], seconds=settings.payment_lease_seconds
    )
    if leased is None:
        # A double click: the first attempt is still charging; this one must not charge too.
        raise BadRequestError("Payment already in progress")
    lease, order = leased
    try:
        # Again under the lease: an attempt that finished just before this one took the lease
        # has stored its payment by now, and a cancellation may have landed (one that lands from
        # now on waits for the lease: see refunds.settle_cancelled_order).
        await _check_payable(db, order, settings)
        intent = await charger.order_intent(order_id=order["_id"], amount_cents=order["priceCents"])
        await repository.set_payment_intent(db, order_id=order["_id"], payment_intent_id=intent.id)
        if intent.status == SUCCEEDED:
            # An earlier attempt charged the card and its answer was lost (Stripe unreachable,
            # or storing the payment failed): record that charge, never make another.
            log.info("recording an earlier charge", extra={"order_id": order["_id"]})
        else:
            await charger.confirm(intent, order_id=order["_id"], token=body.token)
        # Should this write fail, the next attempt finds the PaymentIntent succeeded: as above.
        try:
            payment = await repository.create_payment(
                db,
                order_id=order["_id"],
                stripe_id=intent.id,
                amount_cents=order["priceCents"],
                currency=CURRENCY,
            )
        except DuplicateKeyError:
            # Stored by an attempt that outlived its lease: the same PaymentIntent, one charge.
            raise BadRequestError(ALREADY_PAID) from None
        runtime.relay.kick(repository.PAYMENTS, payment["_id"])
        await _refund_if_cancelled_meanwhile(db, charger, payment)
    finally:
        await repository.release_order(db, order_id=order["_id"], lease=lease)
    return PaymentPublic(id=str(payment["_id"]))


async def _check_payable(db: Any, order: Document, settings: Settings) -> None:
    if order["status"] == OrderStatus.CANCELLED:
        raise BadRequestError("Cannot pay for a cancelled order")
    if order["status"] == OrderStatus.COMPLETE or await repository.get_payment_for_order(
        db, order_id=order["_id"]
    ):
        raise BadRequestError(ALREADY_PAID)
    remaining = (as_utc(order["expiresAt"]) - datetime.now(UTC)).total_seconds()
    if remaining <= 0:
        raise BadRequestError("Order has expired")
    if remaining < settings.payment_min_remaining_seconds:
        # Its expiry would likely cancel it mid-charge; better no charge than one refunded.
        raise BadRequestError("Order expires too soon to pay")


async def _refund_if_cancelled_meanwhile(
    db: Any, charger: StripeCharger, payment: Document
) -> None:
    """Refund now if the order was cancelled while it was being charged.

    Read after the payment is stored, so that of this attempt and the order:cancelled handler
    (which cancels, then looks for a payment) at least one sees the other's write, even should
    this attempt have outlived its lease.
    """
    order = await repository.get_order(db, order_id=payment["orderId"])
    if order is None or order["status"] != OrderStatus.CANCELLED:
        return
    try:
        await refunds.refund_payment(db, charger, payment)
    except stripe.StripeError as exc:
        # The order:cancelled handler, waiting for this attempt's lease, refunds it then.
        log.warning(
            "refund deferred to the cancellation handler",
            extra={"order_id": payment["orderId"], "error": repr(exc)},
        )
        raise BadRequestError(CANCELLED_WHILE_PAYING.format("will be")) from None
    raise BadRequestError(CANCELLED_WHILE_PAYING.format("has been"))
