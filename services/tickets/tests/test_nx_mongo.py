"""The service on nx-27017 (the local stack's Mongo): the queries and conditional writes it uses."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import (
    OrderCancelled,
    OrderCancelledTicketRef,
    OrderCreated,
    OrderStatus,
    OrderTicketRef,
    new_event,
)
from ticketing_common.mongo import connect
from ticketing_common.testing import ServerProcess, running, session_cookie
from ticketing_tickets.main import create_app
from ticketing_tickets.settings import Settings

pytestmark = pytest.mark.connected


@pytest.fixture
async def nx_client(
    nx_mongo: ServerProcess, settings: Settings, bus: InMemoryBus
) -> AsyncIterator[httpx.AsyncClient]:
    mongo = connect(f"mongodb://{nx_mongo.url}", app_name="tickets-test")
    try:
        async with running(create_app(settings, mongo=mongo, bus=bus)) as client:
            client.cookies.update(session_cookie(settings, user_id=str(ObjectId())))
            yield client
    finally:
        await mongo.close()


async def test_selling_on_a_fresh_nx_database(
    nx_mongo: ServerProcess, settings: Settings, bus: InMemoryBus
) -> None:
    mongo = connect(f"mongodb://{nx_mongo.url}", app_name="tickets-test")
    try:
        async with running(create_app(settings, mongo=mongo, bus=bus)) as client:
            client.cookies.update(session_cookie(settings, user_id=str(ObjectId())))
            res = await client.post("/api/tickets", json={"title": "t", "price": 1})
            assert res.status_code == 201, res.text
    finally:
        await mongo.close()


async def test_sell_list_edit_reserve_release_on_nx_mongo(
    nx_client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    client = nx_client
    ids = []
    for i in range(5):
        res = await client.post("/api/tickets", json={"title": f"t{i}", "price": "12.34"})
        assert res.status_code == 201, res.text
        ids.append(res.json()["id"])

    res = await client.put(f"/api/tickets/{ids[0]}", json={"title": "edited", "price": 1})
    assert (res.status_code, res.json()["version"]) == (200, 1)

    order_id = str(ObjectId())
    created = OrderCreated(
        id=order_id,
        version=0,
        status=OrderStatus.CREATED,
        user_id="buyer",
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        ticket=OrderTicketRef(id=ids[3], price=12.34),
    )
    await bus.publish(new_event(created))
    await bus.drain()
    show: dict[str, Any] = (await client.get(f"/api/tickets/{ids[3]}")).json()
    assert (show["orderId"], show["version"]) == (order_id, 1)

    first = (await client.get("/api/tickets", params={"limit": 2})).json()
    assert [t["id"] for t in first] == [ids[4], ids[2]]
    rest = (await client.get("/api/tickets", params={"before": first[-1]["id"]})).json()
    assert [t["id"] for t in rest] == [ids[1], ids[0]]

    cancelled = OrderCancelled(id=order_id, version=1, ticket=OrderCancelledTicketRef(id=ids[3]))
    await bus.publish(new_event(cancelled))
    late = OrderCancelled(id="dead-order", version=1, ticket=OrderCancelledTicketRef(id=ids[2]))
    await bus.publish(new_event(late))
    await bus.drain()
    late_created = created.model_copy(
        update={"id": "dead-order", "ticket": OrderTicketRef(id=ids[2], price=12.34)}
    )
    await bus.publish(new_event(late_created))
    await bus.drain()
    assert await bus.dead_letters() == []
    show = (await client.get(f"/api/tickets/{ids[3]}")).json()
    assert (show["orderId"], show["version"]) == (None, 2)
    show = (await client.get(f"/api/tickets/{ids[2]}")).json()
    assert (show["orderId"], show["version"]) == (None, 0)
    assert len((await client.get("/api/tickets")).json()) == 5
