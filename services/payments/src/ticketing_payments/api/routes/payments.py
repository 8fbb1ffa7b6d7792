"""/api/payments: pay for an order with a card, through the order's one PaymentIntent.

Paying authorizes the card only; the money moves when orders completes the order (see
`paying` and `settle`). Refusals are raised as they are decided, already the shared kinds
(`ticketing_payments.errors`, common's NotTheOwnerError, `charges`' Stripe errors), and rendered
by the one error handler.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from ticketing_common.errors import error_responses
from ticketing_payments import paying
from ticketing_payments.deps import CurrentUser, RuntimeDep
from ticketing_payments.schemas import PaymentCreate, PaymentPublic

router = APIRouter(prefix="/api/payments", tags=["payments"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 404, 502))
async def create_payment(
    body: PaymentCreate, user: CurrentUser, runtime: RuntimeDep
) -> PaymentPublic:
    """Authorize the order's price on a card and publish payment:created."""
    payment = await paying.pay(
        runtime.outbox,
        runtime.charger,
        order_id=body.orderId,
        user_id=user.id,
        token=body.token,
        lease_seconds=runtime.settings.payment_lease_seconds,
    )
    return PaymentPublic(id=str(payment["_id"]))
