"""/api/payments: pay for an order with a card."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, status
from pymongo.errors import DuplicateKeyError

from ticketing_common.errors import BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.events import OrderStatus
from ticketing_common.mongo import Document, as_utc
from ticketing_payments import repository
from ticketing_payments.charges import CURRENCY
from ticketing_payments.deps import ChargerDep, CurrentUser, RuntimeDep, SettingsDep
from ticketing_payments.schemas import PaymentCreate, PaymentPublic

log = logging.getLogger("ticketing.payments")

router = APIRouter(prefix="/api/payments", tags=["payments"])

ALREADY_PAID = "Order has already been paid"


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
    await _check_payable(db, order)

    leased = await repository.lease_order(
        db, order_id=order["_id"], seconds=settings.payment_lease_seconds
    )
    if leased is None:
        # A double click: the first attempt is still charging; this one must not charge too.
        raise BadRequestError("Payment already in progress")
    lease, order = leased
    try:
        # Again under the lease: an attempt that finished just before this one took the lease
        # has stored its payment by now, and a cancellation may have landed.
        await _check_payable(db, order)
        stripe_id = await charger.charge(
            order_id=order["_id"], token=body.token, amount_cents=order["priceCents"]
        )
        # Should this write fail after the charge, the buyer's retry with the same card replays
        # Stripe's answer (same idempotency key) and stores it then: never a second charge.
        try:
            payment = await repository.create_payment(
                db,
                order_id=order["_id"],
                stripe_id=stripe_id,
                amount_cents=order["priceCents"],
                currency=CURRENCY,
            )
        except DuplicateKeyError:
            # Only an attempt that outlived its lease gets here; its charge needs a refund.
            log.error(
                "order paid twice",
                extra={"order_id": order["_id"], "payment_intent": stripe_id},
            )
            raise BadRequestError(ALREADY_PAID) from None
    finally:
        await repository.release_order(db, order_id=order["_id"], lease=lease)
    runtime.relay.kick(repository.PAYMENTS, payment["_id"])
    return PaymentPublic(id=str(payment["_id"]))


async def _check_payable(db: Any, order: Document) -> None:
    if order["status"] == OrderStatus.CANCELLED:
        raise BadRequestError("Cannot pay for a cancelled order")
    if order["status"] == OrderStatus.COMPLETE or await repository.get_payment_for_order(
        db, order_id=order["_id"]
    ):
        raise BadRequestError(ALREADY_PAID)
    if as_utc(order["expiresAt"]) <= datetime.now(UTC):
        raise BadRequestError("Order has expired")
