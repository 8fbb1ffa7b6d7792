"""Orders cancels its own overdue orders: a lost expiration:complete never holds a ticket."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from bson import ObjectId
from fastapi import FastAPI

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import (
    ExpirationComplete,
    PaymentCreated,
    Subject,
    TicketCreated,
    new_event,
)
from ticketing_common.testing import eventually, published, running
from ticketing_orders.expiry import sweep_once
from ticketing_orders.main import create_app
from ticketing_orders.settings import Settings

UserHeaders = Callable[..., dict[str, str]]
TicketFactory = Callable[..., Awaitable[str]]


async def place(client: httpx.AsyncClient, headers: dict[str, str], ticket_id: str) -> Any:
    res = await client.post("/api/orders", json={"ticketId": ticket_id}, headers=headers)
    assert res.status_code == 201, res.text
    return res.json()


def when(order: dict[str, Any], *, after_expiry: float) -> datetime:
    expires_at = datetime.fromisoformat(order["expiresAt"].replace("Z", "+00:00"))
    return expires_at + timedelta(seconds=after_expiry)


async def test_an_overdue_order_is_cancelled_once_its_grace_is_over(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    user_headers: UserHeaders,
    ticket_on_sale: TicketFactory,
    bus: InMemoryBus,
    mongo: Any,
) -> None:
    buyer = user_headers()
    order = await place(client, buyer, await ticket_on_sale())
    runtime = app.state.runtime
    grace = settings.expiry_grace_seconds
    # Past expiresAt but within the grace: a payment accepted in time may still be on its way.
    assert await sweep_once(runtime, settings, now=when(order, after_expiry=grace - 0.5)) == 0
    assert (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()["status"] == (
        "created"
    )
    # No expiration:complete ever comes; the sweep ends the order itself.
    assert await sweep_once(runtime, settings, now=when(order, after_expiry=grace + 0.5)) == 1
    (cancelled,) = await published(bus, Subject.ORDER_CANCELLED, 1)
    assert (cancelled.data.id, cancelled.data.version) == (order["id"], 1)
    ticket = await mongo[settings.mongo_db]["tickets"].find_one({"_id": order["ticket"]["id"]})
    assert ticket["reservedBy"] is None
    # Again, and then the late event: nothing more happens.
    assert await sweep_once(runtime, settings, now=when(order, after_expiry=grace + 9)) == 0
    await bus.publish(new_event(ExpirationComplete(order_id=order["id"])))
    await published(bus, Subject.ORDER_CANCELLED, 1)
    await bus.drain()
    assert len(bus.published_on(Subject.ORDER_CANCELLED)) == 1


async def test_a_paid_order_is_never_cancelled_by_the_sweep(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    user_headers: UserHeaders,
    ticket_on_sale: TicketFactory,
    bus: InMemoryBus,
) -> None:
    buyer = user_headers()
    order = await place(client, buyer, await ticket_on_sale())
    payment = PaymentCreated(id=str(ObjectId()), order_id=order["id"], stripe_id="pi_1")
    await bus.publish(new_event(payment))
    await bus.drain()
    now = when(order, after_expiry=settings.expiry_grace_seconds + 60)
    assert await sweep_once(app.state.runtime, settings, now=now) == 0
    res = await client.get(f"/api/orders/{order['id']}", headers=buyer)
    assert res.json()["status"] == "complete"
    await published(bus, Subject.ORDER_CANCELLED, 0)


async def test_the_running_service_sweeps_by_itself(
    mongo: Any, bus: InMemoryBus, user_headers: UserHeaders
) -> None:
    """No expiration service at all: the order still ends about grace after its expiry."""
    settings = Settings(
        environment="test",
        jwt_key="test-jwt-key-0123456789abcdef0123456789",
        order_expiration_seconds=1,
        expiry_grace_seconds=0.5,
        expiry_sweep_seconds=0.1,
    )
    app = create_app(settings, mongo=mongo, bus=bus)
    async with running(app) as client:
        ticket_id = str(ObjectId())
        await bus.publish(
            new_event(TicketCreated(id=ticket_id, version=0, title="t", price=5, user_id="seller"))
        )
        await bus.drain()
        buyer = user_headers()
        order = await place(client, buyer, ticket_id)
        placed_at = datetime.now(UTC)

        async def cancelled() -> bool:
            res = await client.get(f"/api/orders/{order['id']}", headers=buyer)
            return bool(res.json()["status"] == "cancelled")

        await eventually(cancelled, timeout=10)
        waited = (datetime.now(UTC) - placed_at).total_seconds()
        assert 1.4 <= waited < 5, waited
        # Freed in the replica: the next buyer gets it.
        await place(client, user_headers(), ticket_id)
