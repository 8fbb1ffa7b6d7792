"""Twenty buyers, one ticket, on nx-27017 through the real driver: exactly one order wins."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject, TicketCreated, new_event
from ticketing_common.testing import ServerProcess, eventually, running, session_cookie
from ticketing_orders import repository
from ticketing_orders.main import create_app
from ticketing_orders.settings import Settings

pytestmark = pytest.mark.connected

BUYERS = 20


@pytest.fixture
async def nx_client(nx_mongo: ServerProcess) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(f"mongodb://{nx_mongo.url}", tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
def nx_app(settings: Settings, nx_client: AsyncMongoClient[Any], bus: InMemoryBus) -> FastAPI:
    return create_app(settings, mongo=nx_client, bus=bus)


def headers(settings: Settings, user_id: str | None = None) -> dict[str, str]:
    ((name, token),) = session_cookie(settings, user_id=user_id).items()
    return {"cookie": f"{name}={token}"}


async def on_sale(bus: InMemoryBus) -> str:
    ticket_id = str(ObjectId())
    data = TicketCreated(id=ticket_id, version=0, title="gig", price=30, user_id=str(ObjectId()))
    await bus.publish(new_event(data))
    await bus.drain()
    return ticket_id


async def buy_all_at_once(
    client: httpx.AsyncClient, settings: Settings, ticket_id: str
) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(
                client.post("/api/orders", json={"ticketId": ticket_id}, headers=headers(settings))
                for _ in range(BUYERS)
            )
        )
    )


def exactly_one_winner(responses: list[httpx.Response]) -> dict[str, Any]:
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [400] * (BUYERS - 1), [r.text for r in responses]
    for r in responses:
        if r.status_code == 400:
            assert r.json() == {"errors": [{"message": "Ticket is already reserved"}]}
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    assert isinstance(winner, dict)
    return winner


async def test_twenty_concurrent_buyers_through_the_api(
    nx_app: FastAPI, nx_client: AsyncMongoClient[Any], settings: Settings, bus: InMemoryBus
) -> None:
    db = nx_client[settings.mongo_db]
    async with running(nx_app) as client:
        ticket_id = await on_sale(bus)

        winner = exactly_one_winner(await buy_all_at_once(client, settings, ticket_id))
        orders = await db["orders"].find({"ticketId": ticket_id}).limit(BUYERS + 1).to_list()
        assert [(str(o["_id"]), o["status"]) for o in orders] == [(winner["id"], "created")]
        ticket = await db["tickets"].find_one({"_id": ticket_id})
        assert ticket is not None
        assert ticket["reservedBy"] == winner["id"]

        cancel = await client.delete(
            f"/api/orders/{winner['id']}", headers=headers(settings, winner["userId"])
        )
        assert cancel.status_code == 204

        async def cancelled_published() -> bool:
            events = bus.published_on(Subject.ORDER_CANCELLED)
            return [(e.data.id, e.data.version) for e in events] == [(winner["id"], 1)]

        await eventually(cancelled_published)
        assert [e.data.id for e in bus.published_on(Subject.ORDER_CREATED)] == [winner["id"]]
        # Freed: the next rush has exactly one winner again.
        second = exactly_one_winner(await buy_all_at_once(client, settings, ticket_id))
        assert second["id"] != winner["id"]


async def test_twenty_concurrent_takeovers_of_a_cancelled_holder(
    nx_app: FastAPI, nx_client: AsyncMongoClient[Any], settings: Settings, bus: InMemoryBus
) -> None:
    """The holder was cancelled but the release never happened: one buyer takes it over."""
    db = nx_client[settings.mongo_db]
    async with running(nx_app) as client:
        ticket_id = await on_sale(bus)
        first = exactly_one_winner(await buy_all_at_once(client, settings, ticket_id))
        await db["orders"].update_one(
            {"_id": ObjectId(first["id"])}, {"$set": {"status": "cancelled"}}
        )
        second = exactly_one_winner(await buy_all_at_once(client, settings, ticket_id))
        ticket = await db["tickets"].find_one({"_id": ticket_id})
        assert ticket is not None
        assert ticket["reservedBy"] == second["id"]


async def test_twenty_buyers_on_twenty_connections(
    nx_app: FastAPI, nx_mongo: ServerProcess, settings: Settings, bus: InMemoryBus
) -> None:
    """Each buyer on its own client (own connection pool), as separate processes would be."""
    async with running(nx_app):
        ticket_id = await on_sale(bus)
    clients: list[AsyncMongoClient[Any]] = [
        AsyncMongoClient(f"mongodb://{nx_mongo.url}", tz_aware=True) for _ in range(BUYERS)
    ]
    try:
        dbs = [c[settings.mongo_db] for c in clients]
        await asyncio.gather(*(db.command("ping") for db in dbs))  # connect before the rush

        async def buy(db: Any) -> str:
            try:
                order, _ = await repository.create_order(
                    db,
                    user_id=str(ObjectId()),
                    ticket_id=ticket_id,
                    expires_in=timedelta(minutes=1),
                )
            except repository.TicketReservedError:
                return "reserved"
            return str(order["_id"])

        results = await asyncio.gather(*(buy(db) for db in dbs))
        winners = [r for r in results if r != "reserved"]
        assert len(winners) == 1, results
        orders = await dbs[0]["orders"].find({"ticketId": ticket_id}).limit(BUYERS + 1).to_list()
        assert [str(o["_id"]) for o in orders] == winners
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_a_holder_that_never_confirmed_is_taken_over_by_exactly_one(
    nx_app: FastAPI, nx_client: AsyncMongoClient[Any], settings: Settings, bus: InMemoryBus
) -> None:
    """A buyer died between reserving and confirming: twenty buyers, one takes it over, and
    the dead buyer's order is gone without ever having been announced."""
    db = nx_client[settings.mongo_db]
    async with running(nx_app) as client:
        ticket_id = await on_sale(bus)
        ghost = ObjectId()
        await db["orders"].insert_one(
            {
                "_id": ghost,
                "userId": "dead",
                "status": "created",
                "expiresAt": datetime.now(UTC) + timedelta(minutes=5),
                "version": 0,
                "ticketId": ticket_id,
                "confirmed": False,
                "_outbox": [],
                "_outboxPending": False,
            }
        )
        await db["tickets"].update_one({"_id": ticket_id}, {"$set": {"reservedBy": str(ghost)}})
        winner = exactly_one_winner(await buy_all_at_once(client, settings, ticket_id))
        ticket = await db["tickets"].find_one({"_id": ticket_id})
        assert ticket is not None
        assert ticket["reservedBy"] == winner["id"]
        assert await db["orders"].find_one({"_id": ghost}) is None
        live = await db["orders"].find({"ticketId": ticket_id}).to_list()
        assert [str(o["_id"]) for o in live if o["confirmed"]] == [winner["id"]]
