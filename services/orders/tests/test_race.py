"""Twenty buyers, one ticket, on nx-27017 through the real driver: exactly one order wins."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.mongo import Database
from ticketing_orders.settings import Settings
from ticketing_testing.mongo import NX
from ticketing_testing.plugin import UserHeaders
from ticketing_testing.servers import ServerProcess
from ticketing_testing.waiting import eventually

# The app on nx-27017 (`mongo`, `db`, `client`), through the real driver.
pytestmark = [pytest.mark.connected, pytest.mark.parametrize("mongo", [NX], indirect=True)]

BUYERS = 20
TicketFactory = Callable[..., Awaitable[str]]
Rush = Callable[[str], Awaitable[dict[str, Any]]]
Buy = Callable[..., Awaitable[str]]


def exactly_one_winner(responses: list[httpx.Response]) -> dict[str, Any]:
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [400] * (BUYERS - 1), [r.text for r in responses]
    for r in responses:
        if r.status_code == 400:
            assert r.json() == {"errors": [{"message": "Ticket is already reserved"}]}
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    assert isinstance(winner, dict)
    return winner


@pytest.fixture
def rush(client: httpx.AsyncClient, user_headers: UserHeaders) -> Rush:
    """Twenty buyers order the ticket at once: exactly one wins; the winner's order."""

    async def rush(ticket_id: str) -> dict[str, Any]:
        body = {"ticketId": ticket_id}
        responses = await asyncio.gather(
            *(client.post("/api/orders", json=body, headers=user_headers()) for _ in range(BUYERS))
        )
        return exactly_one_winner(list(responses))

    return rush


async def test_twenty_concurrent_buyers_through_the_api(
    client: httpx.AsyncClient,
    db: Database,
    ticket_on_sale: TicketFactory,
    rush: Rush,
    user_headers: UserHeaders,
    bus: InMemoryBus,
) -> None:
    ticket_id = await ticket_on_sale()

    winner = await rush(ticket_id)
    orders = await db["orders"].find({"ticketId": ticket_id}).limit(BUYERS + 1).to_list()
    assert [(str(o["_id"]), o["status"]) for o in orders] == [(winner["id"], "created")]
    ticket = await db["tickets"].find_one({"_id": ticket_id})
    assert ticket is not None
    assert ticket["reservedBy"] == winner["id"]

    cancel = await client.delete(
        f"/api/orders/{winner['id']}", headers=user_headers(winner["userId"])
    )
    assert cancel.status_code == 204

    async def cancelled_published() -> bool:
        events = bus.published_on(Subject.ORDER_CANCELLED)
        return [(e.data.id, e.data.version) for e in events] == [(winner["id"], 1)]

    await eventually(cancelled_published)
    assert [e.data.id for e in bus.published_on(Subject.ORDER_CREATED)] == [winner["id"]]
    # Freed: the next rush has exactly one winner again.
    second = await rush(ticket_id)
    assert second["id"] != winner["id"]


async def test_twenty_concurrent_takeovers_of_a_cancelled_holder(
    db: Database, ticket_on_sale: TicketFactory, rush: Rush
) -> None:
    """The holder was cancelled but the release never happened: one buyer takes it over."""
    ticket_id = await ticket_on_sale()
    first = await rush(ticket_id)
    await db["orders"].update_one({"_id": ObjectId(first["id"])}, {"$set": {"status": "cancelled"}})
    second = await rush(ticket_id)
    ticket = await db["tickets"].find_one({"_id": ticket_id})
    assert ticket is not None
    assert ticket["reservedBy"] == second["id"]


async def test_twenty_buyers_on_twenty_connections(
    ticket_on_sale: TicketFactory, nx_mongo: ServerProcess, settings: Settings, buy: Buy
) -> None:
    """Each buyer on its own client (own connection pool), as separate processes would be."""
    ticket_id = await ticket_on_sale()
    clients: list[AsyncMongoClient[Any]] = [
        AsyncMongoClient(f"mongodb://{nx_mongo.url}", tz_aware=True) for _ in range(BUYERS)
    ]
    try:
        dbs = [c[settings.mongo_db] for c in clients]
        await asyncio.gather(*(db.command("ping") for db in dbs))  # connect before the rush
        results = await asyncio.gather(*(buy(db, ticket_id) for db in dbs))
        winners = [r for r in results if r != "reserved"]
        assert len(winners) == 1, results
        orders = await dbs[0]["orders"].find({"ticketId": ticket_id}).limit(BUYERS + 1).to_list()
        assert [str(o["_id"]) for o in orders] == winners
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_a_holder_that_never_confirmed_is_taken_over_by_exactly_one(
    db: Database,
    ticket_on_sale: TicketFactory,
    rush: Rush,
    unconfirmed_holder: Callable[[Any, str], Awaitable[ObjectId]],
) -> None:
    """A buyer died between reserving and confirming: twenty buyers, one takes it over, and
    the dead buyer's order is gone without ever having been announced."""
    ticket_id = await ticket_on_sale()
    ghost = await unconfirmed_holder(db, ticket_id)
    winner = await rush(ticket_id)
    ticket = await db["tickets"].find_one({"_id": ticket_id})
    assert ticket is not None
    assert ticket["reservedBy"] == winner["id"]
    assert await db["orders"].find_one({"_id": ghost}) is None
    live = await db["orders"].find({"ticketId": ticket_id}).to_list()
    assert [str(o["_id"]) for o in live if o["confirmed"]] == [winner["id"]]
