"""Paying for an order: authorize the card through the order's one PaymentIntent, under a lease
on the order, and store the payment with its payment:created, unless the order's window to pay
closed meanwhile (see `windows`): then the authorization is voided and the buyer told.

Paying authorizes the card only; the money moves when orders completes the order (see `settle`).
One attempt at a time per order: the lease (`replica.lease_order`) keeps a second, concurrent
attempt (a double click) from authorizing too, and holds back the void on cancellation, which
must see how the attempt ended. An attempt that crashed loses its lease when it expires.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import stripe
from pymongo.errors import DuplicateKeyError

from ticketing_common.bus import DependencyUnavailable, RetryLater
from ticketing_common.errors import NotTheOwnerError
from ticketing_common.events import OrderStatus
from ticketing_common.mongo import Database, as_utc
from ticketing_common.outbox import Outbox
from ticketing_common.telemetry import tracing
from ticketing_payments import replica, repository, settle
from ticketing_payments.charges import AUTHORIZED, CURRENCY, StripeCharger
from ticketing_payments.errors import NotPayableError, OrderNotFoundError
from ticketing_payments.replica import OrderReplicaDoc
from ticketing_payments.repository import PaymentDoc

log = logging.getLogger("ticketing.payments")

ALREADY_PAID = "Order has already been paid"
CANCELLED_WHILE_PAYING = "Order was cancelled during payment; your card has not been charged"
EXPIRED = "Order has expired"
EXPIRED_WHILE_PAYING = "Order expired during payment; your card has not been charged"


async def pay(
    outbox: Outbox,
    charger: StripeCharger,
    *,
    order_id: str,
    user_id: str,
    token: str,
    lease_seconds: float,
) -> PaymentDoc:
    """Authorize the order's price on the card `token` and store the payment (publishing
    payment:created); the payment.

    Orders then completes the order (and payments captures) or, if it cancelled the order
    meanwhile, keeps it cancelled (and payments voids the authorization). Raises
    OrderNotFoundError, NotTheOwnerError (not the buyer), NotPayableError; Stripe's refusals
    and outages come as charges' errors for the buyer.
    """
    db = outbox.db
    order = await replica.get_order(db, order_id=order_id)
    if order is None:
        raise OrderNotFoundError()
    if order["userId"] != user_id:
        raise NotTheOwnerError()
    await _check_payable(db, order)
    # Paying is a step of the order's story: in the order's trace, linked to this request's.
    with tracing.continued(
        "payments", order.get("_trace"), "pay order", {tracing.ORDER_ID: order_id}
    ):
        return await _authorize(outbox, charger, order, token=token, lease_seconds=lease_seconds)


async def _authorize(
    outbox: Outbox,
    charger: StripeCharger,
    order: OrderReplicaDoc,
    *,
    token: str,
    lease_seconds: float,
) -> PaymentDoc:
    """Authorize the card under a lease on the order, and store the payment."""
    db = outbox.db
    leased = await replica.lease_order(db, order_id=order["_id"], seconds=lease_seconds)
    if leased is None:
        # A double click: the first attempt is still authorizing; this one must not too.
        raise NotPayableError("Payment already in progress")
    lease, order = leased
    try:
        # Again under the lease: an attempt that finished just before this one took the lease
        # has stored its payment by now, and a cancellation may have landed (one that lands from
        # now on waits for the lease: see settle.void_cancelled_order).
        await _check_payable(db, order)
        intent = await charger.order_intent(order_id=order["_id"], amount_cents=order["priceCents"])
        await replica.set_payment_intent(db, order_id=order["_id"], payment_intent_id=intent.id)
        if intent.status in AUTHORIZED:
            # An earlier attempt authorized the card and its answer was lost (Stripe
            # unreachable, or storing the payment failed): record that one, never make another.
            log.info("recording an earlier authorization", extra={"order_id": order["_id"]})
        else:
            await charger.confirm(intent, order_id=order["_id"], token=token)
        # Should this write fail, the next attempt finds the PaymentIntent authorized: as above.
        try:
            payment = await repository.create_payment(
                outbox,
                order_id=order["_id"],
                stripe_id=intent.id,
                amount_cents=order["priceCents"],
                currency=CURRENCY,
            )
        except DuplicateKeyError:
            if await repository.window_closed(db, order_id=order["_id"]):
                # The expiry closed the window while Stripe authorized: the closing won.
                await _void_after_the_window_closed(db, charger, order_id=order["_id"])
                raise NotPayableError(EXPIRED_WHILE_PAYING) from None
            # Stored by an attempt that outlived its lease: the same PaymentIntent, one charge.
            raise NotPayableError(ALREADY_PAID) from None
        await replica.mark_window(db, order_id=order["_id"], window="paid")
        await _void_if_cancelled_meanwhile(db, charger, payment)
    finally:
        await replica.release_order(db, order_id=order["_id"], lease=lease)
    return payment


async def _check_payable(db: Database, order: OrderReplicaDoc) -> None:
    if order["status"] == OrderStatus.CANCELLED:
        raise NotPayableError("Cannot pay for a cancelled order")
    window = await repository.window_of(db, order_id=order["_id"])
    if order["status"] == OrderStatus.COMPLETE or window == "paid":
        raise NotPayableError(ALREADY_PAID)
    # Up to the last moment: a payment stored before the window closes completes the order,
    # however late its event reaches orders (see `windows`).
    if window == "closed" or as_utc(order["expiresAt"]) <= datetime.now(UTC):
        raise NotPayableError(EXPIRED)


async def _void_if_cancelled_meanwhile(
    db: Database, charger: StripeCharger, payment: PaymentDoc
) -> None:
    """Void now, and tell the buyer, if the order was cancelled while the card was authorized.

    Read after the payment is stored, so that of this attempt and the order:cancelled handler
    (which cancels the replica, waits for the lease, then looks for the payment) at least one
    sees the other's write, even should this attempt have outlived its lease. Orders keeps the
    order cancelled whatever payment:created says, so nothing will ever capture this.
    """
    order = await replica.get_order(db, order_id=payment["orderId"])
    if order is None or order["status"] != OrderStatus.CANCELLED:
        return
    await _void_now(db, charger, order, payment)
    raise NotPayableError(CANCELLED_WHILE_PAYING)


async def _void_after_the_window_closed(
    db: Database, charger: StripeCharger, *, order_id: str
) -> None:
    """Release the authorization this attempt made for an order whose window closed first.

    Orders cancels the order on payment:window-closed, and payments' order:cancelled handler
    voids the PaymentIntent too (it waits for this attempt's lease): this is only sooner.
    """
    order = await replica.get_order(db, order_id=order_id)  # with its paymentIntentId
    if order is not None:
        await _void_now(db, charger, order, None)


async def _void_now(
    db: Database, charger: StripeCharger, order: OrderReplicaDoc, payment: PaymentDoc | None
) -> None:
    """Void within the buyer's request if Stripe lets us; if not, the order:cancelled handler
    (waiting for this attempt's lease) voids it later."""
    try:
        await settle.void(db, charger, order, payment)
    except (DependencyUnavailable, RetryLater, stripe.StripeError) as exc:
        log.warning(
            "void deferred to the cancellation handler",
            extra={"order_id": order["_id"], "error": repr(exc)},
        )
