"""/api/orders: order a ticket, list and show one's orders, cancel one."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from ticketing_common.errors import BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.money import to_dollars
from ticketing_common.mongo import Document, as_utc, parse_object_id
from ticketing_orders import repository
from ticketing_orders.deps import CurrentUser, RuntimeDep, SettingsDep
from ticketing_orders.schemas import OrderCreate, OrderPublic, OrderTicket

router = APIRouter(prefix="/api/orders", tags=["orders"])


def order_public(order: Document, ticket: Document | None) -> OrderPublic:
    if ticket is None:
        # Replicas are never deleted, so this cannot happen; still answer from the order itself.
        ticket_public = OrderTicket(
            id=order["ticketId"],
            title="",
            price=to_dollars(order["priceCents"]),
            version=0,
        )
    else:
        ticket_public = OrderTicket(
            id=ticket["_id"],
            title=ticket["title"],
            # What this order is charged, even if the ticket's price changed since.
            price=to_dollars(order["priceCents"]),
            version=ticket["version"],
        )
    return OrderPublic(
        id=str(order["_id"]),
        userId=order["userId"],
        status=order["status"],
        expiresAt=as_utc(order["expiresAt"]),
        version=order["version"],
        ticket=ticket_public,
    )


async def _own_order(runtime: RuntimeDep, user: CurrentUser, order_id: str) -> Document:
    oid = parse_object_id(order_id)
    order = await repository.get_order(runtime.db, order_id=oid) if oid is not None else None
    if order is None:
        raise NotFoundError()
    if order["userId"] != user.id:
        raise NotAuthorizedError()
    return order


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_order(
    body: OrderCreate, user: CurrentUser, runtime: RuntimeDep, settings: SettingsDep
) -> OrderPublic:
    """Order a ticket: reserve it for the caller until the order expires."""
    try:
        order, ticket = await repository.create_order(
            runtime.db,
            user_id=user.id,
            ticket_id=body.ticketId,
            expires_in=timedelta(seconds=settings.order_expiration_seconds),
        )
    except repository.TicketNotFoundError:
        raise NotFoundError() from None
    except repository.TicketReservedError:
        raise BadRequestError("Ticket is already reserved") from None
    runtime.relay.kick(repository.ORDERS, order["_id"])
    return order_public(order, ticket)


@router.get("")
async def list_orders(
    user: CurrentUser,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: str | None = None,
) -> list[OrderPublic]:
    """The caller's orders with their tickets, newest first; `?before=<id>` for the next page."""
    cursor = None
    if before is not None:
        cursor = parse_object_id(before)
        if cursor is None:
            raise BadRequestError("Invalid cursor", field="before")
    orders = await repository.list_orders(runtime.db, user_id=user.id, limit=limit, before=cursor)
    tickets = await repository.get_tickets(runtime.db, ticket_ids=[o["ticketId"] for o in orders])
    return [order_public(o, tickets.get(o["ticketId"])) for o in orders]


@router.get("/{order_id}")
async def show_order(order_id: str, user: CurrentUser, runtime: RuntimeDep) -> OrderPublic:
    """One of the caller's orders."""
    order = await _own_order(runtime, user, order_id)
    ticket = await repository.get_ticket(runtime.db, ticket_id=order["ticketId"])
    return order_public(order, ticket)


@router.delete("/{order_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def cancel_order(order_id: str, user: CurrentUser, runtime: RuntimeDep) -> Response:
    """Cancel one of the caller's orders and release its ticket."""
    order = await _own_order(runtime, user, order_id)
    result, _ = await repository.cancel_order(runtime.db, order_id=order["_id"])
    if result is repository.CancelResult.NOT_FOUND:
        raise NotFoundError()
    if result is repository.CancelResult.COMPLETE:
        raise BadRequestError("Cannot cancel a completed order")
    runtime.relay.kick(repository.ORDERS, order["_id"])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
