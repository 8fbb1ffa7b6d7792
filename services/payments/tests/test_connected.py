"""The same rules on nx-27017 (a real Mongo wire server): lease, unique payment, replica."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Event, OrderCancelled, OrderCreated, Subject
from ticketing_common.testing import ServerProcess, eventually, running, session_cookie
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings

pytestmark = pytest.mark.connected


async def test_payments_on_nx_27017(
    settings: Settings,
    nx_mongo: ServerProcess,
    fake_stripe: FakeStripeServer,
    created_event: Callable[..., Event[OrderCreated]],
    cancelled_event: Callable[..., Event[OrderCancelled]],
) -> None:
    on_nx = settings.model_copy(update={"mongo_url": f"mongodb://{nx_mongo.url}"})
    bus = InMemoryBus("payments")
    paid, cancelled = created_event(price=19.99), created_event()
    async with running(create_app(on_nx, bus=bus)) as client:
        client.cookies.update(session_cookie(settings, user_id=paid.data.user_id))
        # Out of order and twice: the cancel before its order, every event duplicated.
        for event in (cancelled_event(cancelled.data.id), paid, cancelled, paid, cancelled):
            # New envelope ids: JetStream-style de-duplication must not hide the repeats.
            await bus.publish(event.model_copy(update={"id": uuid.uuid4().hex}))
        await bus.drain()

        results = await asyncio.gather(
            *(
                client.post("/api/payments", json={"token": token, "orderId": paid.data.id})
                for token in ("tok_visa", "pm_card_visa", "tok_mastercard")
            )
        )
        assert sorted(r.status_code for r in results) == [201, 400, 400]
        again = await client.post(
            "/api/payments", json={"token": "tok_visa", "orderId": paid.data.id}
        )
        assert again.json() == {"errors": [{"message": "Order has already been paid"}]}
        refused = await client.post(
            "/api/payments", json={"token": "tok_visa", "orderId": cancelled.data.id}
        )
        assert refused.json() == {"errors": [{"message": "Cannot pay for a cancelled order"}]}

        async def published() -> bool:
            return len(bus.published_on(Subject.PAYMENT_CREATED)) == 1

        await eventually(published)

    assert [(pi["amount"], pi["status"]) for pi in fake_stripe.state.intents()] == [
        (1999, "succeeded")
    ]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(f"mongodb://{nx_mongo.url}")
    try:
        db = mongo[on_nx.mongo_db]
        payments = [p async for p in db["payments"].find({}).limit(10)]
        assert [(p["orderId"], p["amountCents"]) for p in payments] == [(paid.data.id, 1999)]
        replica = await db["orders"].find_one({"_id": cancelled.data.id})
        assert replica is not None
        assert (replica["status"], replica["version"]) == ("cancelled", 1)
    finally:
        await mongo.close()


async def test_refunds_on_nx_27017(
    settings: Settings,
    nx_mongo: ServerProcess,
    fake_stripe: FakeStripeServer,
    created_event: Callable[..., Event[OrderCreated]],
    cancelled_event: Callable[..., Event[OrderCancelled]],
) -> None:
    """A paid order and one whose charge's answer was lost, both cancelled twice: two refunds."""
    on_nx = settings.model_copy(update={"mongo_url": f"mongodb://{nx_mongo.url}"})
    bus = InMemoryBus("payments")
    paid, lost = created_event(price=12.5), created_event(price=7)
    async with running(create_app(on_nx, bus=bus)) as client:
        client.cookies.update(session_cookie(settings, user_id=paid.data.user_id))
        for event in (paid, lost):
            await bus.publish(event)
        await bus.drain()
        res = await client.post(
            "/api/payments", json={"token": "tok_visa", "orderId": paid.data.id}
        )
        assert res.status_code == 201
        fake_stripe.state.fail_next(3, after_commit=True, path="/confirm")
        res = await client.post(
            "/api/payments", json={"token": "tok_visa", "orderId": lost.data.id}
        )
        assert res.status_code == 502
        for _ in range(2):
            for order in (paid, lost):
                event = cancelled_event(order.data.id)
                await bus.publish(event.model_copy(update={"id": uuid.uuid4().hex}))
            await bus.drain()
        assert await bus.dead_letters() == []

    refunds = {r["metadata"]["orderId"]: r["amount"] for r in fake_stripe.state.refunds()}
    assert refunds == {paid.data.id: 1250, lost.data.id: 700}
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(f"mongodb://{nx_mongo.url}")
    try:
        db = mongo[on_nx.mongo_db]
        payments = {p["orderId"]: p async for p in db["payments"].find({}).limit(10)}
        assert set(payments) == {paid.data.id, lost.data.id}
        assert all(p["refundId"] and p["refundedAt"] for p in payments.values())
        replica = await db["orders"].find_one({"_id": lost.data.id})
        assert replica is not None
        assert replica["paymentIntentId"] == payments[lost.data.id]["stripeId"]
    finally:
        await mongo.close()
