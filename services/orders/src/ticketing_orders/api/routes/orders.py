"""/api/orders: order a ticket, list and show one's orders, cancel one.

Refusals are raised as they are decided, already the shared kinds (`ticketing_orders.errors`,
common's NotTheOwnerError), and rendered by the one error handler.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response, status

from ticketing_common.errors import error_responses
from ticketing_orders import buyers, reservations
from ticketing_orders.deps import CurrentUser, PageDep, RuntimeDep
from ticketing_orders.schemas import OrderCreate, OrderPublic

router = APIRouter(prefix="/api/orders", tags=["orders"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(400, 401, 404))
async def create_order(body: OrderCreate, user: CurrentUser, runtime: RuntimeDep) -> OrderPublic:
    """Order a ticket: reserve it for the caller until the order expires.

    400 when the ticket is already reserved, or when the caller already holds
    MAX_OPEN_ORDERS_PER_USER open orders (pay for or cancel one, or let it expire, first)."""
    order, ticket = await reservations.create_order(
        runtime.outbox,
        user_id=user.id,
        ticket_id=body.ticketId,
        expires_in=timedelta(seconds=runtime.settings.order_expiration_seconds),
        max_open=runtime.settings.max_open_orders_per_user,
    )
    return OrderPublic.from_docs(order, ticket)


@router.get("", responses=error_responses(401))
async def list_orders(user: CurrentUser, runtime: RuntimeDep, page: PageDep) -> list[OrderPublic]:
    """The caller's orders with their tickets, newest first; `?before=<id>` for the next page."""
    views = await buyers.list_orders(
        runtime.db, user_id=user.id, limit=page.limit, before=page.before
    )
    return [OrderPublic.from_docs(order, ticket) for order, ticket in views]


@router.get("/{order_id}", responses=error_responses(401, 404))
async def show_order(order_id: str, user: CurrentUser, runtime: RuntimeDep) -> OrderPublic:
    """One of the caller's orders."""
    order, ticket = await buyers.show_order(runtime.db, order_id=order_id, user_id=user.id)
    return OrderPublic.from_docs(order, ticket)


@router.delete(
    "/{order_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(400, 401, 404),
)
async def cancel_order(order_id: str, user: CurrentUser, runtime: RuntimeDep) -> Response:
    """Cancel one of the caller's orders and release its ticket."""
    await buyers.cancel_order(runtime.outbox, order_id=order_id, user_id=user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
