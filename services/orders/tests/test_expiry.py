"""Orders cancels its own overdue orders: a lost expiration:complete never holds a ticket."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import OrderStatus, Subject
from ticketing_common.mongo import Database, ensure_indexes
from ticketing_orders import state
from ticketing_orders.expiry import sweep_once
from ticketing_orders.settings import Settings
from ticketing_testing.events import delivered, expiration_complete, payment_created
from ticketing_testing.mongo import recorded_nx_client
from ticketing_testing.waiting import eventually, published

UserHeaders = Callable[..., dict[str, str]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
Sweep = Callable[[dict[str, Any], float], Awaitable[int]]


@pytest.fixture
def sweep(runtime: Any, settings: Settings) -> Sweep:
    """One sweep of the running app, as if `after_expiry` seconds past the order's expiresAt;
    how many orders it cancelled."""

    async def sweep(order: dict[str, Any], after_expiry: float) -> int:
        expires_at = datetime.fromisoformat(order["expiresAt"].replace("Z", "+00:00"))
        now = expires_at + timedelta(seconds=after_expiry)
        return await sweep_once(runtime.outbox, settings, now=now)

    return sweep


async def test_an_overdue_order_is_cancelled_once_its_grace_is_over(
    client: httpx.AsyncClient,
    sweep: Sweep,
    settings: Settings,
    user_headers: UserHeaders,
    place_order: PlaceOrder,
    bus: InMemoryBus,
    db: Database,
) -> None:
    buyer = user_headers()
    order = await place_order(headers=buyer)
    grace = settings.expiry_grace_seconds
    # Past expiresAt but within the grace: a payment accepted in time may still be on its way.
    assert await sweep(order, grace - 0.5) == 0
    assert (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()["status"] == (
        "created"
    )
    # No expiration:complete ever comes; the sweep ends the order itself.
    assert await sweep(order, grace + 0.5) == 1
    (cancelled,) = await published(bus, Subject.ORDER_CANCELLED, 1)
    assert (cancelled.data.id, cancelled.data.version) == (order["id"], 1)
    ticket = await db["tickets"].find_one({"_id": order["ticket"]["id"]})
    assert ticket["reservedBy"] is None
    # Again, and then the late event: nothing more happens.
    assert await sweep(order, grace + 9) == 0
    await bus.publish(expiration_complete(order["id"]))
    await published(bus, Subject.ORDER_CANCELLED, 1)
    await bus.drain()
    assert len(bus.published_on(Subject.ORDER_CANCELLED)) == 1


async def test_a_paid_order_is_never_cancelled_by_the_sweep(
    client: httpx.AsyncClient,
    sweep: Sweep,
    settings: Settings,
    place_order: PlaceOrder,
    bus: InMemoryBus,
    user_headers: UserHeaders,
) -> None:
    buyer = user_headers()
    order = await place_order(headers=buyer)
    await delivered(bus, payment_created(order["id"]))
    assert await sweep(order, settings.expiry_grace_seconds + 60) == 0
    res = await client.get(f"/api/orders/{order['id']}", headers=buyer)
    assert res.json()["status"] == "complete"
    await published(bus, Subject.ORDER_CANCELLED, 0)


QUICK = {"order_expiration_seconds": 1, "expiry_grace_seconds": 0.5, "expiry_sweep_seconds": 0.1}


@pytest.mark.parametrize("settings", [QUICK], ids=["quick"], indirect=True)
async def test_the_running_service_sweeps_by_itself(
    client: httpx.AsyncClient, place_order: PlaceOrder, user_headers: UserHeaders
) -> None:
    """No expiration service at all: the order still ends about grace after its expiry."""
    buyer = user_headers()
    order = await place_order(headers=buyer)
    placed_at = datetime.now(UTC)

    async def cancelled() -> bool:
        res = await client.get(f"/api/orders/{order['id']}", headers=buyer)
        return bool(res.json()["status"] == "cancelled")

    await eventually(cancelled, timeout=10)
    waited = (datetime.now(UTC) - placed_at).total_seconds()
    assert 1.4 <= waited < 5, waited
    # Freed in the replica: the next buyer gets it.
    await place_order(order["ticket"]["id"])


@pytest.mark.connected
async def test_overdue_orders_are_found_by_indexed_ranges_earliest_first(nx_mongo: Any) -> None:
    """Open orders past the cutoff, both open statuses, the earliest first; each asked as a
    (status, expiresAt) range: nx-27017 reads every order for a `$in` on the status."""
    now = datetime.now(UTC).replace(microsecond=0)

    def order(status: OrderStatus, minutes: int, *, confirmed: bool = True) -> dict[str, Any]:
        return {
            "_id": ObjectId(),
            "userId": "u",
            "status": status.value,
            "expiresAt": now + timedelta(minutes=minutes),
            "version": 0,
            "ticketId": str(ObjectId()),
            "confirmed": confirmed,
        }

    late_paying = order(OrderStatus.AWAITING_PAYMENT, -30)
    late = order(OrderStatus.CREATED, -20)
    later = order(OrderStatus.CREATED, -10)
    others = [
        order(OrderStatus.CREATED, 10),
        order(OrderStatus.COMPLETE, -40),
        order(OrderStatus.CANCELLED, -40),
        order(OrderStatus.CREATED, -40, confirmed=False),
    ]
    async with recorded_nx_client(nx_mongo) as (client, queries):
        db = client["orders"]
        await ensure_indexes(db, state.INDEXES)
        await db[state.ORDERS].insert_many([later, *others, late, late_paying])
        assert await state.overdue_orders(db, cutoff=now) == [
            late_paying["_id"],
            late["_id"],
            later["_id"],
        ]
        assert await state.overdue_orders(db, cutoff=now, limit=2) == [
            late_paying["_id"],
            late["_id"],
        ]
        assert queries.filters
        assert not queries.ranges_on("status"), queries.filters
