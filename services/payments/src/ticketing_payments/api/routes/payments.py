"""/api/payments: pay for an order with a card, through the order's one PaymentIntent.

Paying authorizes the card only; the money moves when orders completes the order (see
`paying` and `settle`).
"""

from __future__ import annotations

from fastapi import APIRouter, status

from ticketing_common.errors import (
    BadRequestError,
    NotAuthorizedError,
    NotFoundError,
    error_responses,
)
from ticketing_payments import paying
from ticketing_payments.deps import CurrentUser, RuntimeDep
from ticketing_payments.schemas import PaymentCreate, PaymentPublic

router = APIRouter(prefix="/api/payments", tags=["payments"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 404, 502))
async def create_payment(
    body: PaymentCreate, user: CurrentUser, runtime: RuntimeDep
) -> PaymentPublic:
    """Authorize the order's price on a card and publish payment:created."""
    try:
        payment = await paying.pay(
            runtime.outbox,
            runtime.charger,
            order_id=body.orderId,
            user_id=user.id,
            token=body.token,
            lease_seconds=runtime.settings.payment_lease_seconds,
        )
    except paying.OrderNotFoundError:
        raise NotFoundError() from None
    except paying.NotTheBuyerError:
        raise NotAuthorizedError() from None
    except paying.NotPayableError as exc:
        raise BadRequestError(str(exc)) from None
    return PaymentPublic(id=str(payment["_id"]))
