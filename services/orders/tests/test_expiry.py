"""Orders ends an expired order only on payments' word, and drops the reservations nobody
confirmed by itself."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.mongo import Database
from ticketing_orders.expiry import sweep_once
from ticketing_orders.settings import Settings
from ticketing_testing.events import delivered, payment_window_closed
from ticketing_testing.waiting import eventually, published

UserHeaders = Callable[..., dict[str, str]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]


def long_after(order: dict[str, Any], seconds: float) -> datetime:
    return datetime.fromisoformat(order["expiresAt"].replace("Z", "+00:00")) + timedelta(
        seconds=seconds
    )


async def test_an_overdue_order_waits_for_payments_word_then_is_cancelled_once(
    client: httpx.AsyncClient,
    settings: Settings,
    user_headers: UserHeaders,
    place_order: PlaceOrder,
    bus: InMemoryBus,
    db: Database,
) -> None:
    """However late: a payment accepted in time may still be on its way, and only payments
    knows. (Before, orders' own sweep cancelled it at expiresAt + grace, and a buyer who had
    paid in time during an outage lost the ticket.)"""
    buyer = user_headers()
    order = await place_order(headers=buyer)
    assert await sweep_once(db, settings, now=long_after(order, 86400)) == 0
    res = await client.get(f"/api/orders/{order['id']}", headers=buyer)
    assert res.json()["status"] == "created"
    await published(bus, Subject.ORDER_CANCELLED, 0)

    await delivered(bus, payment_window_closed(order["id"]))
    (cancelled,) = await published(bus, Subject.ORDER_CANCELLED, 1)
    assert (cancelled.data.id, cancelled.data.version) == (order["id"], 1)
    ticket = await db["tickets"].find_one({"_id": order["ticket"]["id"]})
    assert ticket["reservedBy"] is None
    # The same word again (a redelivery): nothing more happens.
    await delivered(bus, payment_window_closed(order["id"]))
    assert len(bus.published_on(Subject.ORDER_CANCELLED)) == 1


async def test_an_unconfirmed_order_is_dropped_once_its_time_and_grace_are_up(
    settings: Settings,
    db: Database,
    bus: InMemoryBus,
    client: httpx.AsyncClient,
    unconfirmed_holder: Callable[[Any, str], Awaitable[ObjectId]],
) -> None:
    other = str(ObjectId())
    await db["tickets"].insert_one(
        {"_id": other, "title": "t", "price": 1.0, "version": 0, "reservedBy": None}
    )
    ghost = await unconfirmed_holder(db, other)
    doc = await db["orders"].find_one({"_id": ghost})
    expires = {"expiresAt": doc["expiresAt"].isoformat()}
    grace = settings.expiry_grace_seconds
    assert await sweep_once(db, settings, now=long_after(expires, grace - 1)) == 0
    assert await sweep_once(db, settings, now=long_after(expires, grace + 1)) == 1
    assert await db["orders"].find_one({"_id": ghost}) is None
    ticket = await db["tickets"].find_one({"_id": other})
    assert ticket["reservedBy"] is None
    await published(bus, Subject.ORDER_CANCELLED, 0)  # it never showed: nothing to announce


@pytest.mark.parametrize(
    "settings", [{"order_expiration_seconds": 1, "expiry_sweep_seconds": 0.1}], indirect=True
)
async def test_the_running_service_sweeps_unconfirmed_orders_by_itself(
    db: Database,
    unconfirmed_holder: Callable[[Any, str], Awaitable[ObjectId]],
    settings: Settings,
    client: httpx.AsyncClient,
) -> None:
    ticket = str(ObjectId())
    await db["tickets"].insert_one(
        {"_id": ticket, "title": "t", "price": 1.0, "version": 0, "reservedBy": None}
    )
    ghost = await unconfirmed_holder(db, ticket)
    await db["orders"].update_one(
        {"_id": ghost}, {"$set": {"expiresAt": datetime.now().astimezone() - timedelta(days=1)}}
    )

    async def dropped() -> bool:
        return await db["orders"].find_one({"_id": ghost}) is None

    await eventually(dropped, timeout=10)
