"""The buyer's side of orders: their orders with each ticket as the replica has it, and
cancelling one of them. Owner checks live here, so every route asks the same question."""

from __future__ import annotations

from bson import ObjectId

from ticketing_common.mongo import Database, parse_object_id
from ticketing_common.outbox import Outbox
from ticketing_orders import replica, state
from ticketing_orders.replica import TicketReplicaDoc
from ticketing_orders.state import OrderDoc

# An order and its ticket (None only if the replica lacks it, which the flow never allows).
OrderView = tuple[OrderDoc, TicketReplicaDoc | None]


class OrderNotFoundError(LookupError):
    """No such order (or the id is not one of ours)."""


class NotOwnerError(PermissionError):
    """The order belongs to someone else."""


class OrderCompleteError(ValueError):
    """A complete (paid) order cannot be cancelled."""


async def own_order(db: Database, *, order_id: str, user_id: str) -> OrderDoc:
    oid = parse_object_id(order_id)
    order = await state.get_order(db, order_id=oid) if oid is not None else None
    if order is None:
        raise OrderNotFoundError(order_id)
    if order["userId"] != user_id:
        raise NotOwnerError(order_id)
    return order


async def show_order(db: Database, *, order_id: str, user_id: str) -> OrderView:
    order = await own_order(db, order_id=order_id, user_id=user_id)
    return order, await replica.get_ticket(db, ticket_id=order["ticketId"])


async def list_orders(
    db: Database, *, user_id: str, limit: int, before: ObjectId | None = None
) -> list[OrderView]:
    """The user's orders, newest first, with their tickets (two queries, whatever the page)."""
    orders = await state.list_orders(db, user_id=user_id, limit=limit, before=before)
    tickets = await replica.get_tickets(db, ticket_ids=[o["ticketId"] for o in orders])
    return [(o, tickets.get(o["ticketId"])) for o in orders]


async def cancel_order(outbox: Outbox, *, order_id: str, user_id: str) -> None:
    """Cancel the user's order (a cancelled one stays cancelled); its ticket is released."""
    order = await own_order(outbox.db, order_id=order_id, user_id=user_id)
    result, _ = await state.cancel_order(outbox, order_id=order["_id"])
    if result is state.CancelResult.NOT_FOUND:
        raise OrderNotFoundError(order_id)
    if result is state.CancelResult.COMPLETE:
        raise OrderCompleteError(order_id)
