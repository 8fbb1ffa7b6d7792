"""/api/payments: pay for an order with a card, through the order's one PaymentIntent.

Paying authorizes the card only; the money moves when orders completes the order (see `settle`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from fastapi import APIRouter, status
from pymongo.errors import DuplicateKeyError

from ticketing_common.bus import DependencyUnavailable, RetryLater
from ticketing_common.errors import BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.events import OrderStatus
from ticketing_common.mongo import Document, as_utc
from ticketing_payments import repository, settle
from ticketing_payments.charges import AUTHORIZED, CURRENCY, StripeCharger
from ticketing_payments.deps import ChargerDep, CurrentUser, RuntimeDep, SettingsDep
from ticketing_payments.schemas import PaymentCreate, PaymentPublic

log = logging.getLogger("ticketing.payments")

router = APIRouter(prefix="/api/payments", tags=["payments"])

ALREADY_PAID = "Order has already been paid"
CANCELLED_WHILE_PAYING = "Order was cancelled during payment; your card has not been charged"


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_payment(
    body: PaymentCreate,
    user: CurrentUser,
    runtime: RuntimeDep,
    settings: SettingsDep,
    charger: ChargerDep,
) -> PaymentPublic:
    """Authorize the order's price on a card and publish payment:created.

    Orders then completes the order (and payments captures) or, if it cancelled the order
    meanwhile, keeps it cancelled (and payments voids the authorization).
    """
    db = runtime.db
    order = await repository.get_order(db, order_id=body.orderId)
    if order is None:
        raise NotFoundError()
    if order["userId"] != user.id:
        raise NotAuthorizedError()
    await _check_payable(db, order)

    leased = await repository.lease_order(
        db, order_id=order["_id"], seconds=settings.payment_lease_seconds
    )
    if leased is None:
        # A double click: the first attempt is still authorizing; this one must not too.
        raise BadRequestError("Payment already in progress")
    lease, order = leased
    try:
        # Again under the lease: an attempt that finished just before this one took the lease
        # has stored its payment by now, and a cancellation may have landed (one that lands from
        # now on waits for the lease: see settle.void_cancelled_order).
        await _check_payable(db, order)
        intent = await charger.order_intent(order_id=order["_id"], amount_cents=order["priceCents"])
        await repository.set_payment_intent(db, order_id=order["_id"], payment_intent_id=intent.id)
        if intent.status in AUTHORIZED:
            # An earlier attempt authorized the card and its answer was lost (Stripe
            # unreachable, or storing the payment failed): record that one, never make another.
            log.info("recording an earlier authorization", extra={"order_id": order["_id"]})
        else:
            await charger.confirm(intent, order_id=order["_id"], token=body.token)
        # Should this write fail, the next attempt finds the PaymentIntent authorized: as above.
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
        await _void_if_cancelled_meanwhile(db, charger, payment)
    finally:
        await repository.release_order(db, order_id=order["_id"], lease=lease)
    return PaymentPublic(id=str(payment["_id"]))


async def _check_payable(db: Any, order: Document) -> None:
    if order["status"] == OrderStatus.CANCELLED:
        raise BadRequestError("Cannot pay for a cancelled order")
    if order["status"] == OrderStatus.COMPLETE or await repository.get_payment_for_order(
        db, order_id=order["_id"]
    ):
        raise BadRequestError(ALREADY_PAID)
    # Up to the last moment: a payment accepted now reaches orders before the expiry does
    # (expiration fires EXPIRY_GRACE_SECONDS later), and should it not, orders cancels the
    # order and its authorization is voided: never money taken for a cancelled order.
    if as_utc(order["expiresAt"]) <= datetime.now(UTC):
        raise BadRequestError("Order has expired")


async def _void_if_cancelled_meanwhile(db: Any, charger: StripeCharger, payment: Document) -> None:
    """Void now, and tell the buyer, if the order was cancelled while the card was authorized.

    Read after the payment is stored, so that of this attempt and the order:cancelled handler
    (which cancels the replica, waits for the lease, then looks for the payment) at least one
    sees the other's write, even should this attempt have outlived its lease. Orders keeps the
    order cancelled whatever payment:created says, so nothing will ever capture this.
    """
    order = await repository.get_order(db, order_id=payment["orderId"])
    if order is None or order["status"] != OrderStatus.CANCELLED:
        return
    try:
        await settle.void(db, charger, order, payment)
    except (DependencyUnavailable, RetryLater, stripe.StripeError) as exc:
        # The order:cancelled handler, waiting for this attempt's lease, voids it then.
        log.warning(
            "void deferred to the cancellation handler",
            extra={"order_id": payment["orderId"], "error": repr(exc)},
        )
    raise BadRequestError(CANCELLED_WHILE_PAYING)
