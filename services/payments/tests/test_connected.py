"""The same rules on nx-27017 (a real Mongo wire server): lease, unique payment, replica,
capture and void."""

import asyncio
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings
from ticketing_testing.apps import running, sign_in
from ticketing_testing.events import (
    order_cancelled,
    order_completed,
    order_created,
    redelivered,
)
from ticketing_testing.servers import ServerProcess
from ticketing_testing.waiting import eventually

pytestmark = pytest.mark.connected

BUYER = str(ObjectId())


async def test_payments_on_nx_27017(
    settings: Settings,
    nx_mongo: ServerProcess,
    fake_stripe: FakeStripeServer,
) -> None:
    on_nx = settings.model_copy(update={"mongo_url": f"mongodb://{nx_mongo.url}"})
    bus = InMemoryBus("payments")
    paid, cancelled = order_created(user_id=BUYER, price=19.99), order_created(user_id=BUYER)
    async with running(create_app(on_nx, bus=bus)) as client:
        sign_in(client, settings, BUYER)
        # Out of order and twice: the cancel before its order, every event duplicated.
        for event in (order_cancelled(cancelled.data.id), paid, cancelled, paid, cancelled):
            # New envelope ids: JetStream-style de-duplication must not hide the repeats.
            await bus.publish(redelivered(event))
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
        (1999, "requires_capture")
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


async def test_capture_and_void_on_nx_27017(
    settings: Settings,
    nx_mongo: ServerProcess,
    fake_stripe: FakeStripeServer,
) -> None:
    """A paid order completed, one cancelled, and one whose authorization's answer was lost
    cancelled, each event twice: one capture, two voids."""
    on_nx = settings.model_copy(update={"mongo_url": f"mongodb://{nx_mongo.url}"})
    bus = InMemoryBus("payments")
    kept, dropped, lost = (order_created(user_id=BUYER, price=p) for p in (12.5, 8, 7))
    async with running(create_app(on_nx, bus=bus)) as client:
        sign_in(client, settings, BUYER)
        for event in (kept, dropped, lost):
            await bus.publish(event)
        await bus.drain()
        for order in (kept, dropped):
            res = await client.post(
                "/api/payments", json={"token": "tok_visa", "orderId": order.data.id}
            )
            assert res.status_code == 201
        fake_stripe.state.fail_next(3, after_commit=True, path="/confirm")
        res = await client.post(
            "/api/payments", json={"token": "tok_visa", "orderId": lost.data.id}
        )
        assert res.status_code == 502
        decisions = [
            order_completed(kept.data.id),
            order_cancelled(dropped.data.id),
            order_cancelled(lost.data.id),
        ]
        for _ in range(2):
            for event in decisions:
                await bus.publish(redelivered(event))
            await bus.drain()
        assert await bus.dead_letters() == []

    intents = {pi["metadata"]["orderId"]: pi for pi in fake_stripe.state.intents()}
    assert {k: (pi["status"], pi["amount_received"]) for k, pi in intents.items()} == {
        kept.data.id: ("succeeded", 1250),
        dropped.data.id: ("canceled", 0),
        lost.data.id: ("canceled", 0),
    }
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(f"mongodb://{nx_mongo.url}")
    try:
        db = mongo[on_nx.mongo_db]
        payments = {p["orderId"]: p async for p in db["payments"].find({}).limit(10)}
        assert {k: p["status"] for k, p in payments.items()} == {
            kept.data.id: "captured",
            dropped.data.id: "voided",
        }
        replica = await db["orders"].find_one({"_id": lost.data.id})
        assert replica is not None
        assert replica["paymentIntentId"] == intents[lost.data.id]["id"]
        assert replica["paymentIntentCanceled"]  # nx-27017 reads a stored True back as 1
    finally:
        await mongo.close()
