"""The buyer's side of orders: their orders with each ticket as the replica has it, and
cancelling one of them. Owner checks live here, so every route asks the same question.

Also the cap on a buyer's open orders (MAX_OPEN_ORDERS_PER_USER), so one account cannot hold
every listing. Each buyer has a document in `buyers` naming the orders that hold its places
(`openOrders`) and how many it names (`count`, changed in every write that changes the list);
an order takes a place with one conditional write, `count` below the cap, which holds on every
Mongo we run on, so of any number of concurrent orders at most the cap get one, and costs one
round trip while places are free. The list heals itself rather than being kept exact: an order
that ends (cancelled, expired, paid) or is withdrawn keeps its place until the buyer next finds
the list full, when the places of orders no longer open are given back. A crash between any two
steps therefore never locks a buyer out: an order that is gone, cancelled or complete never
becomes open again, and an order takes its place only after it is inserted, so "gone" means
withdrawn.
"""

from __future__ import annotations

from typing import TypedDict

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from ticketing_common.mongo import Database, collection, parse_object_id
from ticketing_common.outbox import Outbox
from ticketing_orders import replica, state
from ticketing_orders.replica import TicketReplicaDoc
from ticketing_orders.state import OrderDoc

BUYERS = "buyers"

# MAX_OPEN_ORDERS_PER_USER's default (SPEC).
DEFAULT_MAX_OPEN_ORDERS = 10


class BuyerDoc(TypedDict):
    """A document of `buyers`."""

    # The user's id.
    _id: str
    # The orders (ids) holding the buyer's places: every open order is here, and maybe orders
    # that ended since (see the module's doc).
    openOrders: list[str]
    # len(openOrders), kept in the same writes: the condition a place is taken on (nx-27017
    # cannot test an array's size or index against a bound).
    count: int


class TooManyOpenOrdersError(Exception):
    """The buyer already holds `limit` open orders."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"already {limit} open orders")
        self.limit = limit


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


def _buyers(db: Database) -> AsyncCollection[BuyerDoc]:
    return collection(db, BUYERS, BuyerDoc)


async def _ended(db: Database, order_ids: list[str]) -> list[str]:
    """Those of `order_ids` that are not open orders (ended, withdrawn, or not ours at all)."""
    oids = [oid for oid in map(parse_object_id, order_ids) if oid is not None]
    cursor = state.orders_of(db).find({"_id": {"$in": oids}}, {"status": 1}).limit(len(oids))
    still_open = {str(d["_id"]) async for d in cursor if d["status"] in state.OPEN_STATUSES}
    return [order_id for order_id in order_ids if order_id not in still_open]


async def take_place(db: Database, *, user_id: str, order_id: ObjectId, limit: int) -> None:
    """Give the (inserted) order one of the buyer's `limit` places, or raise
    TooManyOpenOrdersError when every place is held by an open order."""
    buyers = _buyers(db)
    # Each lost round follows another write to the buyer's list (one of their own concurrent
    # orders taking or giving back a place): a buyer has at most `limit` open orders, so a
    # bounded number of rounds always ends it.
    for _ in range(2 * limit + state.ATTEMPTS):
        taken = await buyers.update_one(
            {"_id": user_id, "count": {"$lt": limit}},
            {"$push": {"openOrders": str(order_id)}, "$inc": {"count": 1}},
        )
        if taken.matched_count == 1:
            return
        buyer = await buyers.find_one({"_id": user_id})
        if buyer is None:
            try:
                await buyers.insert_one({"_id": user_id, "openOrders": [str(order_id)], "count": 1})
            except DuplicateKeyError:
                continue  # their other order made it first
            return
        held, count = buyer["openOrders"], buyer["count"]
        if count < limit:
            continue  # a place was given back since
        ended = await _ended(db, held)
        if not ended:
            raise TooManyOpenOrdersError(limit)
        # On the count read: the list is then the one read, so exactly these leave it.
        await buyers.update_one(
            {"_id": user_id, "count": count},
            {"$pull": {"openOrders": {"$in": ended}}, "$set": {"count": count - len(ended)}},
        )
    raise RuntimeError(f"the open orders of buyer {user_id} kept changing")


async def give_back_place(db: Database, *, user_id: str, order_id: ObjectId) -> None:
    """The place of an order withdrawn before it showed (an optimization: healing would)."""
    buyers = _buyers(db)
    for _ in range(state.ATTEMPTS):
        buyer = await buyers.find_one({"_id": user_id})
        if buyer is None or str(order_id) not in buyer["openOrders"]:
            return
        # On the count read, as healing: the count stays the list's length.
        given = await buyers.update_one(
            {"_id": user_id, "count": buyer["count"]},
            {"$pull": {"openOrders": str(order_id)}, "$inc": {"count": -1}},
        )
        if given.matched_count == 1:
            return
    # Left to healing, which gives back the place of an order gone.
