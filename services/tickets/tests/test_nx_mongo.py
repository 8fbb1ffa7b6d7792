"""The service on nx-27017 (the local stack's Mongo): the queries and conditional writes it uses."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_testing.events import order_cancelled, order_created
from ticketing_testing.mongo import NX

# The app on nx-27017 (`mongo`, `client`), connected as in production.
pytestmark = [pytest.mark.connected, pytest.mark.parametrize("mongo", [NX], indirect=True)]

SignIn = Callable[..., str]


async def test_selling_on_a_fresh_nx_database(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    sign_in()
    res = await client.post("/api/tickets", json={"title": "t", "price": 1})
    assert res.status_code == 201, res.text


async def test_sell_list_edit_reserve_release_on_nx_mongo(
    client: httpx.AsyncClient, sign_in: SignIn, bus: InMemoryBus
) -> None:
    sign_in()
    ids = []
    for i in range(5):
        res = await client.post("/api/tickets", json={"title": f"t{i}", "price": "12.34"})
        assert res.status_code == 201, res.text
        ids.append(res.json()["id"])

    res = await client.put(f"/api/tickets/{ids[0]}", json={"title": "edited", "price": 1})
    assert (res.status_code, res.json()["version"]) == (200, 1)

    order_id = str(ObjectId())
    created = order_created(
        order_id,
        ticket_id=ids[3],
        user_id="buyer",
        price=12.34,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    await bus.publish(created)
    await bus.drain()
    show: dict[str, Any] = (await client.get(f"/api/tickets/{ids[3]}")).json()
    assert (show["orderId"], show["version"]) == (order_id, 1)

    first = (await client.get("/api/tickets", params={"limit": 2})).json()
    assert [t["id"] for t in first] == [ids[4], ids[2]]
    rest = (await client.get("/api/tickets", params={"before": first[-1]["id"]})).json()
    assert [t["id"] for t in rest] == [ids[1], ids[0]]

    await bus.publish(order_cancelled(order_id, ticket_id=ids[3]))
    await bus.publish(order_cancelled("dead-order", ticket_id=ids[2]))
    await bus.drain()
    await bus.publish(order_created("dead-order", ticket_id=ids[2], price=12.34))
    await bus.drain()
    assert await bus.dead_letters() == []
    show = (await client.get(f"/api/tickets/{ids[3]}")).json()
    assert (show["orderId"], show["version"]) == (None, 2)
    show = (await client.get(f"/api/tickets/{ids[2]}")).json()
    assert (show["orderId"], show["version"]) == (None, 0)
    assert len((await client.get("/api/tickets")).json()) == 5
