"""The buyer's side of orders: their orders with each ticket as the replica has it, and
cancelling one of them. Owner checks live here, so every route asks the same question.

Also the cap on a buyer's open orders (MAX_OPEN_ORDERS_PER_USER), so one account cannot hold
every listing. Each buyer has a document in `buyers` naming the orders that hold its places
(`openOrders`) and how many it names (`count`, changed in every write that changes the list);
an order takes a place with one conditional write, `count` below the cap
(`repository.push_place`), which holds on every Mongo we run on, so of any number of concurrent
orders at most the cap get one, and costs one round trip while places are free. The list heals
itself rather than being kept exact: an order that ends (cancelled, expired, paid) or is
withdrawn keeps its place until the buyer next finds the list full, when the places of orders no
longer open are given back. A crash between any two steps therefore never locks a buyer out: an
order that is gone, cancelled or complete never becomes open again, and an order takes its place
only after it is inserted, so "gone" means withdrawn.
"""

from __future__ import annotations

from bson import ObjectId

from ticketing_common.errors import NotTheOwnerError
from ticketing_common.mongo import Database, parse_object_id
from ticketing_common.outbox import Outbox
from ticketing_orders import replica, repository, state
from ticketing_orders.errors import (
    OrderCompleteError,
    OrderNotFoundError,
    TooManyOpenOrdersError,
)
from ticketing_orders.replica import TicketReplicaDoc
from ticketing_orders.repository import OrderDoc

# MAX_OPEN_ORDERS_PER_USER's default (SPEC).
DEFAULT_MAX_OPEN_ORDERS = 10

# An order and its ticket (None only if the replica lacks it, which the flow never allows).
OrderView = tuple[OrderDoc, TicketReplicaDoc | None]


async def own_order(db: Database, *, order_id: str, user_id: str) -> OrderDoc:
    """The user's order; OrderNotFoundError, or NotTheOwnerError when it is someone else's."""
    oid = parse_object_id(order_id)
    order = await repository.get_order(db, order_id=oid) if oid is not None else None
    if order is None:
        raise OrderNotFoundError()
    if order["userId"] != user_id:
        raise NotTheOwnerError()
    return order


async def show_order(db: Database, *, order_id: str, user_id: str) -> OrderView:
    order = await own_order(db, order_id=order_id, user_id=user_id)
    return order, await replica.get_ticket(db, ticket_id=order["ticketId"])


async def list_orders(
    db: Database, *, user_id: str, limit: int, before: ObjectId | None = None
) -> list[OrderView]:
    """The user's orders, newest first, with their tickets (two queries, whatever the page)."""
    orders = await repository.list_orders(db, user_id=user_id, limit=limit, before=before)
    tickets = await replica.get_tickets(db, ticket_ids=[o["ticketId"] for o in orders])
    return [(o, tickets.get(o["ticketId"])) for o in orders]


async def cancel_order(outbox: Outbox, *, order_id: str, user_id: str) -> None:
    """Cancel the user's order (a cancelled one stays cancelled); its ticket is released."""
    order = await own_order(outbox.db, order_id=order_id, user_id=user_id)
    result, _ = await state.cancel_order(outbox, order_id=order["_id"])
    if result is state.CancelResult.NOT_FOUND:
        raise OrderNotFoundError()
    if result is state.CancelResult.COMPLETE:
        raise OrderCompleteError()


async def take_place(db: Database, *, user_id: str, order_id: ObjectId, limit: int) -> None:
    """Give the (inserted) order one of the buyer's `limit` places, or raise
    TooManyOpenOrdersError when every place is held by an open order."""
    # Each lost round follows another write to the buyer's list (one of their own concurrent
    # orders taking or giving back a place): a buyer has at most `limit` open orders, so a
    # bounded number of rounds always ends it.
    for _ in range(2 * limit + state.ATTEMPTS):
        if await repository.push_place(db, user_id=user_id, order_id=order_id, limit=limit):
            return
        buyer = await repository.get_buyer(db, user_id=user_id)
        if buyer is None:
            if await repository.insert_buyer(db, user_id=user_id, order_id=order_id):
                return
            continue  # their other order made it first
        held, count = buyer["openOrders"], buyer["count"]
        if count < limit:
            continue  # a place was given back since
        still_open = await repository.open_among(db, order_ids=held)
        ended = [held_id for held_id in held if held_id not in still_open]
        if not ended:
            raise TooManyOpenOrdersError(limit)
        # On the count read: the list is then the one read, so exactly these leave it.
        await repository.pull_places(db, user_id=user_id, count=count, order_ids=ended)
    raise RuntimeError(f"the open orders of buyer {user_id} kept changing")


async def give_back_place(db: Database, *, user_id: str, order_id: ObjectId) -> None:
    """The place of an order withdrawn before it showed (an optimization: healing would)."""
    for _ in range(state.ATTEMPTS):
        buyer = await repository.get_buyer(db, user_id=user_id)
        if buyer is None or str(order_id) not in buyer["openOrders"]:
            return
        # On the count read, as healing: the count stays the list's length.
        if await repository.pull_place(
            db, user_id=user_id, count=buyer["count"], order_id=order_id
        ):
            return
    # Left to healing, which gives back the place of an order gone.
