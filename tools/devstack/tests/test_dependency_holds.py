"""A dependency down holds only what needs it (issue 21, item 3): with Stripe failing every
capture, payments holds the capture of a paid order, yet keeps replicating new orders, so
another buyer can still pay (and is captured once Stripe is back).

The real orders and payments apps on in-memory Mongo, exchanging events over one in-memory
broker, with the fake Stripe over HTTP, its failures aimed at `/capture` only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI
from mongomock_motor import AsyncMongoMockClient

from ticketing_common.bus import Dependency
from ticketing_common.bus.memory import InMemoryBroker, InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.service import Runtime
from ticketing_common.settings import ServiceSettings
from ticketing_fakestripe import FakeStripeServer
from ticketing_orders.main import create_app as create_orders
from ticketing_orders.settings import Settings as OrdersSettings
from ticketing_payments.main import SPEC as PAYMENTS
from ticketing_payments.main import create_app as create_payments
from ticketing_payments.settings import Settings as PaymentsSettings
from ticketing_testing.apps import TEST_JWT_KEY, cookie_header, running
from ticketing_testing.events import ticket_created
from ticketing_testing.waiting import eventually

# The promise: the second buyer orders and pays within this, Stripe failing throughout.
PAYS_WITHIN_SECONDS = 5.0
# Every capture fails (as many as a test could make): Stripe answering 500 on /capture.
ALL_CAPTURES = 1_000_000


@dataclass
class Service:
    """One of the shop's two services, running."""

    bus: InMemoryBus
    app: FastAPI
    client: httpx.AsyncClient
    settings: ServiceSettings

    @property
    def db(self) -> Any:
        runtime: Runtime[Any] = self.app.state.runtime
        return runtime.db

    async def post(self, path: str, body: dict[str, str], user: str) -> httpx.Response:
        """`body` posted to `path` as `user` signed in."""
        return await self.client.post(path, json=body, headers=cookie_header(self.settings, user))


@dataclass
class Shop:
    orders: Service
    payments: Service
    stripe: FakeStripeServer

    async def on_sale(self) -> str:
        """A ticket tickets announced, once orders knows of it."""
        ticket_id = str(ObjectId())
        await self.orders.bus.publish(ticket_created(ticket_id, title="t", price=10.0))

        async def known() -> bool:
            found = await self.orders.db["tickets"].find_one({"_id": ticket_id})
            return found is not None

        await eventually(known)
        return ticket_id

    async def order(self, buyer: str, ticket_id: str) -> str:
        res = await self.orders.post("/api/orders", {"ticketId": ticket_id}, buyer)
        assert res.status_code == 201, res.text
        order_id: str = res.json()["id"]
        return order_id

    async def pay(self, buyer: str, order_id: str) -> httpx.Response:
        return await self.payments.post(
            "/api/payments", {"token": "tok_visa", "orderId": order_id}, buyer
        )

    async def status(self, order_id: str) -> str:
        order = await self.orders.db["orders"].find_one({"_id": ObjectId(order_id)})
        return str(order["status"])

    async def payment_status(self, order_id: str) -> str | None:
        payment = await self.payments.db["payments"].find_one({"orderId": order_id})
        return None if payment is None else str(payment["status"])


@pytest.fixture
async def shop(fake_stripe: FakeStripeServer) -> AsyncIterator[Shop]:
    broker = InMemoryBroker()
    orders_bus = InMemoryBus("orders", broker=broker, max_deliver=100)
    payments_bus = InMemoryBus("payments", broker=broker, max_deliver=100)
    orders_settings = OrdersSettings(environment="test", jwt_key=TEST_JWT_KEY)
    payments_settings = PaymentsSettings(
        environment="test",
        jwt_key=TEST_JWT_KEY,
        stripe_api_base=fake_stripe.base_url,
        # Each 500 reaches the bus at once, not after the SDK's own retries.
        stripe_max_network_retries=0,
        stripe_timeout_seconds=5,
    )
    orders_app = create_orders(orders_settings, mongo=AsyncMongoMockClient(), bus=orders_bus)
    payments_app = create_payments(
        payments_settings, mongo=AsyncMongoMockClient(), bus=payments_bus
    )
    async with running(orders_app) as orders, running(payments_app) as payments:
        yield Shop(
            Service(orders_bus, orders_app, orders, orders_settings),
            Service(payments_bus, payments_app, payments, payments_settings),
            fake_stripe,
        )
        assert await orders_bus.dead_letters() == []
        assert await payments_bus.dead_letters() == []


async def test_stripe_failing_captures_does_not_keep_a_second_buyer_from_paying(
    shop: Shop,
) -> None:
    """Before: the held capture paused every consumer of payments, its order:created one
    included, so the second buyer's order never reached payments' replica and paying it
    answered 404 for as long as Stripe failed (30 s of 404s on the stack)."""
    first, second = str(ObjectId()), str(ObjectId())
    shop.stripe.state.fail_next(ALL_CAPTURES, 500, path="/capture")

    first_order = await shop.order(first, await shop.on_sale())
    await eventually(lambda: _replicated(shop, first_order))
    paid = await shop.pay(first, first_order)
    assert paid.status_code == 201, paid.text
    # Orders completes the order; payments' capture meets Stripe's 500 and is held.
    await eventually(lambda: shop.payments.bus.dispatcher.holding)
    assert await shop.payment_status(first_order) == "authorized"

    ticket_id = await shop.on_sale()
    began = time.monotonic()
    second_order = await shop.order(second, ticket_id)

    async def second_buyer_pays() -> bool:
        res = await shop.pay(second, second_order)
        # 404 while payments' replica does not know the order yet: try again.
        assert res.status_code in (201, 404), res.text
        return res.status_code == 201

    await eventually(second_buyer_pays, timeout=PAYS_WITHIN_SECONDS, interval=0.05)
    assert time.monotonic() - began < PAYS_WITHIN_SECONDS
    assert shop.payments.bus.dispatcher.holding  # Stripe still failing all along

    # Stripe back: both captures go through by themselves, nothing dead-lettered.
    shop.stripe.state.fail_next(0)

    async def both_captured() -> bool:
        return [await shop.payment_status(o) for o in (first_order, second_order)] == [
            "captured",
            "captured",
        ]

    await eventually(both_captured, timeout=10)
    assert [await shop.status(o) for o in (first_order, second_order)] == [
        "complete",
        "complete",
    ]


async def _replicated(shop: Shop, order_id: str) -> bool:
    return await shop.payments.db["orders"].find_one({"_id": order_id}) is not None


def test_payments_declares_that_only_capture_and_void_need_stripe() -> None:
    assert PAYMENTS.handler_needs(Subject.ORDER_CREATED) == {Dependency.MONGO}
    for settling in (Subject.ORDER_COMPLETED, Subject.ORDER_CANCELLED):
        assert PAYMENTS.handler_needs(settling) == {Dependency.MONGO, Dependency.STRIPE}
