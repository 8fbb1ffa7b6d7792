"""MAX_OPEN_ORDERS_PER_USER: a buyer holds at most that many open orders (default 10), the
next is a 400 that writes nothing, an order that ends frees its place, and neither concurrency
nor a crash between steps gets past the cap or locks the buyer out (in-memory Mongo and
nx-27017)."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.mongo import Database
from ticketing_common.service import Runtime
from ticketing_orders import repository, state
from ticketing_testing.apps import only_error
from ticketing_testing.mongo import EVERY_MONGO
from ticketing_testing.plugin import UserHeaders
from ticketing_testing.waiting import published

pytestmark = pytest.mark.parametrize("mongo", EVERY_MONGO, indirect=True)

TicketFactory = Callable[..., Awaitable[str]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
PostOrder = Callable[..., Awaitable[httpx.Response]]

CAP = 10  # the default, which the tests' settings keep
REFUSED = {"message": f"You already hold {CAP} open orders; pay for or cancel one first"}


async def open_orders(db: Database, user_id: str) -> list[dict[str, Any]]:
    docs = await db["orders"].find({"userId": user_id}).to_list()
    return [d for d in docs if d["status"] in repository.OPEN_STATUSES]


@dataclass(frozen=True)
class Buyer:
    """A user of the test's own: the cap counts the open orders of `id`."""

    id: str
    headers: dict[str, str]


@pytest.fixture
def buyer(user_headers: UserHeaders) -> Buyer:
    """A new buyer: its id, to look its orders up by, and the headers of its requests."""
    user_id = str(ObjectId())
    return Buyer(user_id, user_headers(user_id))


async def test_the_order_past_the_cap_is_a_400_that_leaves_nothing_behind(
    place_order: PlaceOrder,
    post_order: PostOrder,
    ticket_on_sale: TicketFactory,
    user_headers: UserHeaders,
    buyer: Buyer,
    bus: InMemoryBus,
    db: Database,
) -> None:
    for _ in range(CAP):
        await place_order(headers=buyer.headers)
    ticket_id = await ticket_on_sale()
    res = await post_order(ticket_id, buyer.headers)
    assert res.status_code == 400
    assert only_error(res) == REFUSED
    # No half-done write: the ticket is free, no order (even unconfirmed) left, nothing said.
    ticket = await db["tickets"].find_one({"_id": ticket_id})
    assert ticket["reservedBy"] is None
    assert await db["orders"].count_documents({"ticketId": ticket_id}) == 0
    await published(bus, Subject.ORDER_CREATED, CAP)
    # Someone else buys it at once.
    assert (await post_order(ticket_id, user_headers())).status_code == 201


async def test_an_order_that_ends_frees_its_place(
    place_order: PlaceOrder,
    post_order: PostOrder,
    buyer: Buyer,
    client: httpx.AsyncClient,
    runtime: Runtime[Any],
) -> None:
    orders = [await place_order(headers=buyer.headers) for _ in range(CAP)]
    assert (await post_order(headers=buyer.headers)).status_code == 400
    # Cancelled by the buyer.
    cancelled = await client.delete(f"/api/orders/{orders[0]['id']}", headers=buyer.headers)
    assert cancelled.status_code == 204
    await place_order(headers=buyer.headers)
    assert (await post_order(headers=buyer.headers)).status_code == 400
    # Expired: expiry cancels through the same `cancel_order`.
    result, _ = await state.cancel_order(runtime.outbox, order_id=ObjectId(orders[1]["id"]))
    assert result is state.CancelResult.CANCELLED
    await place_order(headers=buyer.headers)
    assert (await post_order(headers=buyer.headers)).status_code == 400
    # Paid.
    paid = await state.complete_order(runtime.outbox, order_id=ObjectId(orders[2]["id"]))
    assert paid is state.CompleteResult.COMPLETED
    await place_order(headers=buyer.headers)
    assert (await post_order(headers=buyer.headers)).status_code == 400
    assert len(await open_orders(runtime.db, buyer.id)) == CAP


async def test_twenty_orders_at_once_leave_at_most_ten_open(
    post_order: PostOrder,
    ticket_on_sale: TicketFactory,
    buyer: Buyer,
    db: Database,
) -> None:
    tickets = [await ticket_on_sale() for _ in range(2 * CAP)]
    results = await asyncio.gather(*(post_order(t, buyer.headers) for t in tickets))
    assert sorted(r.status_code for r in results) == [201] * CAP + [400] * CAP
    assert all(only_error(r) == REFUSED for r in results if r.status_code == 400)
    created = [r.json()["id"] for r in results if r.status_code == 201]
    still_open = await open_orders(db, buyer.id)
    assert sorted(str(d["_id"]) for d in still_open) == sorted(created)
    assert all(d["confirmed"] for d in still_open)
    reserved = await db["tickets"].count_documents({"reservedBy": {"$ne": None}})
    assert reserved == CAP
    doc = await db[repository.BUYERS].find_one({"_id": buyer.id})
    assert sorted(doc["openOrders"]) == sorted(created)
    assert doc["count"] == CAP


async def test_places_left_by_crashed_or_ended_orders_do_not_lock_the_buyer_out(
    place_order: PlaceOrder, post_order: PostOrder, buyer: Buyer, db: Database
) -> None:
    """A process that died between taking a place and withdrawing its order, or orders that
    ended without giving their places back: the list is full of them, and is healed."""
    live = await place_order(headers=buyer.headers)
    ghosts = [str(ObjectId()) for _ in range(CAP - 1)]
    await db[repository.BUYERS].update_one(
        {"_id": buyer.id}, {"$set": {"openOrders": [live["id"], *ghosts], "count": CAP}}
    )
    for _ in range(CAP - 1):
        await place_order(headers=buyer.headers)
    assert (await post_order(headers=buyer.headers)).status_code == 400
    doc = await db[repository.BUYERS].find_one({"_id": buyer.id})
    assert live["id"] in doc["openOrders"]
    assert not set(ghosts) & set(doc["openOrders"])
    assert doc["count"] == len(doc["openOrders"]) == CAP


async def test_an_order_refused_for_its_ticket_gives_its_place_back(
    place_order: PlaceOrder,
    post_order: PostOrder,
    ticket_on_sale: TicketFactory,
    buyer: Buyer,
    db: Database,
) -> None:
    taken = await ticket_on_sale()
    await place_order(taken)
    for _ in range(3 * CAP):
        assert (await post_order(taken, buyer.headers)).status_code == 400
    assert (await post_order("65f0a1b2c3d4e5f601234567", buyer.headers)).status_code == 404
    doc = await db[repository.BUYERS].find_one({"_id": buyer.id})
    assert (doc["openOrders"], doc["count"]) == ([], 0)
    for _ in range(CAP):
        await place_order(headers=buyer.headers)
