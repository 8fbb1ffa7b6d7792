"""/api/orders: order a ticket, list and show one's orders, cancel one."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response, status

from ticketing_common.errors import BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.money import to_dollars
from ticketing_common.mongo import as_utc, parse_object_id
from ticketing_orders import replica, reservations, state
from ticketing_orders.deps import CurrentUser, PageDep, RuntimeDep
from ticketing_orders.replica import TicketReplicaDoc
from ticketing_orders.schemas import OrderCreate, OrderPublic, OrderTicket
from ticketing_orders.state import OrderDoc

router = APIRouter(prefix="/api/orders", tags=["orders"])


def order_public(order: OrderDoc, ticket: TicketReplicaDoc | None) -> OrderPublic:
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


async def _own_order(runtime: RuntimeDep, user: CurrentUser, order_id: str) -> OrderDoc:
    oid = parse_object_id(order_id)
    order = await state.get_order(runtime.db, order_id=oid) if oid is not None else None
    if order is None:
        raise NotFoundError()
    if order["userId"] != user.id:
        raise NotAuthorizedError()
    return order


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_order(body: OrderCreate, user: CurrentUser, runtime: RuntimeDep) -> OrderPublic:
    """Order a ticket: reserve it for the caller until the order expires."""
    try:
        order, ticket = await reservations.create_order(
            runtime.outbox,
            user_id=user.id,
            ticket_id=body.ticketId,
            expires_in=timedelta(seconds=runtime.settings.order_expiration_seconds),
        )
    except reservations.TicketNotFoundError:
        raise NotFoundError() from None
    except reservations.TicketReservedError:
        raise BadRequestError("Ticket is already reserved") from None
    return order_public(order, ticket)


@router.get("")
async def list_orders(user: CurrentUser, runtime: RuntimeDep, page: PageDep) -> list[OrderPublic]:
    """The caller's orders with their tickets, newest first; `?before=<id>` for the next page."""
    orders = await state.list_orders(
        runtime.db, user_id=user.id, limit=page.limit, before=page.before
    )
    tickets = await replica.get_tickets(runtime.db, ticket_ids=[o["ticketId"] for o in orders])
    return [order_public(o, tickets.get(o["ticketId"])) for o in orders]


@router.get("/{order_id}")
async def show_order(order_id: str, user: CurrentUser, runtime: RuntimeDep) -> OrderPublic:
    """One of the caller's orders."""
    order = await _own_order(runtime, user, order_id)
    ticket = await replica.get_ticket(runtime.db, ticket_id=order["ticketId"])
    return order_public(order, ticket)


@router.delete("/{order_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def cancel_order(order_id: str, user: CurrentUser, runtime: RuntimeDep) -> Response:
    """Cancel one of the caller's orders and release its ticket."""
    order = await _own_order(runtime, user, order_id)
    result, _ = await state.cancel_order(runtime.outbox, order_id=order["_id"])
    if result is state.CancelResult.NOT_FOUND:
        raise NotFoundError()
    if result is state.CancelResult.COMPLETE:
        raise BadRequestError("Cannot cancel a completed order")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
