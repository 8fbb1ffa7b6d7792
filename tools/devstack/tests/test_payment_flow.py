"""Orders and payments together, in-process: whatever the interleaving of a payment, the buyer's
cancel, the expiry, payments' overdue sweep, outages and redelivered events, an order ends
complete with exactly one captured charge, or cancelled with nothing captured (its authorization
voided); nobody is charged twice; and a payment answered 201 completes its order unless its
buyer cancelled it, however long the bus was down around the expiry.

The real apps on in-memory Mongo, exchanging events over one in-memory broker, with the fake
Stripe over HTTP. The broker can be "down" (publishing fails, so events wait in the outboxes,
as with NATS paused), and each service's outbox can be flushed on its own, so a test decides
which service hears of the other's writes first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mongomock_motor import AsyncMongoMockClient

from ticketing_common.bus.memory import InMemoryBroker, InMemoryBus
from ticketing_common.events import (
    Event,
    Subject,
)
from ticketing_common.outbox import PENDING
from ticketing_common.service import Runtime
from ticketing_devstack.invariants import payment_problems, stripe_problems
from ticketing_fakestripe import FakeStripeServer
from ticketing_orders.main import create_app as create_orders
from ticketing_orders.settings import Settings as OrdersSettings
from ticketing_payments import windows
from ticketing_payments.charges import StripeCharger
from ticketing_payments.main import create_app as create_payments
from ticketing_payments.settings import Settings as PaymentsSettings
from ticketing_testing.apps import TEST_JWT_KEY, running, session_cookie
from ticketing_testing.events import expiration_complete, redelivered, ticket_created
from ticketing_testing.waiting import eventually

BUYER = str(ObjectId())
PRICE, CENTS = 19.99, 1999
# Outboxes are emptied by the kick at write time and by `flush`/`settle`, never behind a test's
# back by the periodic sweep: each test decides when a service's events get out.
OUTBOX_SWEEP_SECONDS = 3600
# Events that carry an order's fate, and may be redelivered or duplicated at any time.
REDELIVERABLE = (
    Subject.PAYMENT_CREATED,
    Subject.PAYMENT_WINDOW_CLOSED,
    Subject.ORDER_COMPLETED,
    Subject.ORDER_CANCELLED,
)
# As if this long after the order's expiresAt: past every grace (the sweep's are minutes).
LONG_AFTER = timedelta(days=1)


@dataclass
class System:
    """Orders and payments on one broker, and what a test does to them."""

    broker: InMemoryBroker
    orders_bus: InMemoryBus
    payments_bus: InMemoryBus
    orders_app: FastAPI
    payments_app: FastAPI
    orders: httpx.AsyncClient
    payments: httpx.AsyncClient
    stripe: FakeStripeServer
    # Run inside the next authorization, while the payment attempt holds its lease.
    during_authorization: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def runtime(self, app: FastAPI) -> Runtime:
        runtime: Runtime = app.state.runtime
        return runtime

    @property
    def orders_db(self) -> Any:
        return self.runtime(self.orders_app).db

    @property
    def payments_db(self) -> Any:
        return self.runtime(self.payments_app).db

    # --- the bus ---------------------------------------------------------------------------------

    def nats_down(self) -> None:
        """Publishing fails from now on: new events wait in their outboxes."""
        self.broker.available = False

    def nats_up(self) -> None:
        self.broker.available = True

    async def drain(self) -> None:
        await self.orders_bus.drain(timeout=20)

    async def inject(self, event: Event[Any]) -> None:
        """Put an event on the broker even while it is "down" (another publisher got through)."""
        was = self.broker.available
        self.broker.available = True
        try:
            await self.orders_bus.publish(event)
            await self.drain()
        finally:
            self.broker.available = was

    async def flush(self, app: FastAPI) -> None:
        """Deliver what one service's outbox holds (and what that sets off), then restore."""
        was = self.broker.available
        self.broker.available = True
        try:
            await self.runtime(app).relay.sweep()
            await self.drain()
        finally:
            self.broker.available = was

    async def payments_learns_of_the_cancel(self, order_id: str) -> None:
        """Deliver orders' order:cancelled to payments' replica, from inside a payment attempt:
        not `flush`, whose drain would wait for the void, which waits for the attempt's lease."""
        was = self.broker.available
        self.broker.available = True
        try:
            await self.runtime(self.orders_app).relay.sweep()

            async def cancelled() -> bool:
                replica = await self.payments_db["orders"].find_one({"_id": order_id})
                return bool(replica["status"] == "cancelled")

            await eventually(cancelled)
        finally:
            self.broker.available = was

    async def settle(self) -> None:
        """The bus back for good, every outbox emptied and every event handled."""
        self.nats_up()

        async def quiet() -> bool:
            sent = 0
            for app in (self.orders_app, self.payments_app):
                sent += await self.runtime(app).relay.sweep()
            await self.drain()
            pending = await self.orders_db["orders"].count_documents({PENDING: True})
            pending += await self.payments_db["payments"].count_documents({PENDING: True})
            return sent == 0 and pending == 0

        await eventually(quiet, timeout=20)

    # --- the buyer and the other services ---------------------------------------------------------

    async def open_order(self) -> str:
        """A ticket on sale (as tickets announces it) and the buyer's order for it, known to
        payments."""
        self.nats_up()
        ticket_id = str(ObjectId())
        await self.inject(ticket_created(ticket_id, title="t", price=PRICE, user_id="seller"))
        res = await self.orders.post("/api/orders", json={"ticketId": ticket_id})
        assert res.status_code == 201, res.text
        order_id: str = res.json()["id"]

        async def replicated() -> bool:
            return await self.payments_db["orders"].find_one({"_id": order_id}) is not None

        await eventually(replicated)
        await self.drain()
        return order_id

    async def pay(self, order_id: str) -> int:
        body = {"token": "tok_visa", "orderId": order_id}
        res = await self.payments.post("/api/payments", json=body)
        assert res.status_code in (201, 400), res.text
        return res.status_code

    async def cancel(self, order_id: str) -> int:
        res = await self.orders.delete(f"/api/orders/{order_id}")
        assert res.status_code in (204, 400), res.text
        return res.status_code

    async def expire(self, order_id: str) -> None:
        """expiration:complete, as the expiry job publishes it (it has its own connection)."""
        await self.inject(expiration_complete(order_id))

    async def sweep_payments(self) -> None:
        """Payments' overdue sweep, as if long after every grace (a lost expiry event)."""
        runtime = self.runtime(self.payments_app)
        now = datetime.now(UTC) + timedelta(seconds=900) + LONG_AFTER
        await windows.sweep_once(runtime.outbox, runtime.settings, now=now)

    async def redeliver(self, order_id: str, subject: Subject) -> None:
        """The order's last event of `subject` again, under a new envelope id (JetStream's
        de-duplication cannot hide it): a redelivery, or a duplicate publish."""
        events = [
            e
            for e in self.orders_bus.published_on(subject)
            if order_id in (getattr(e.data, "order_id", None), getattr(e.data, "id", None))
        ]
        if events:
            await self.inject(redelivered(events[-1]))

    # --- the outcome ----------------------------------------------------------------------------

    async def outcome(self, order_id: str) -> tuple[str, list[str], list[dict[str, Any]]]:
        """(order status, its payments' statuses, its PaymentIntents at Stripe)."""
        order = await self.orders_db["orders"].find_one({"_id": ObjectId(order_id)})
        payments = [p async for p in self.payments_db["payments"].find({"orderId": order_id})]
        intents = [
            pi for pi in self.stripe.state.intents() if pi["metadata"].get("orderId") == order_id
        ]
        return order["status"], [p["status"] for p in payments], intents

    async def invariant_problems(self, order_id: str) -> list[str]:
        """The SPEC's payment invariants for this order, as the e2e consistency check sees them."""
        status, _, intents = await self.outcome(order_id)
        orders = {order_id: {"status": status}}
        payments = [p async for p in self.payments_db["payments"].find({"orderId": order_id})]
        return payment_problems(orders, payments) + stripe_problems(orders, payments, intents)


@pytest.fixture
async def system(
    fake_stripe: FakeStripeServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[System]:
    broker = InMemoryBroker()
    # Enough redeliveries that an event deferred (RetryLater) is never dead-lettered here.
    orders_bus = InMemoryBus("orders", broker=broker, max_deliver=100, retry_delay=0.002)
    payments_bus = InMemoryBus("payments", broker=broker, max_deliver=100, retry_delay=0.002)
    orders_settings = OrdersSettings(
        environment="test",
        jwt_key=TEST_JWT_KEY,
        outbox_sweep_seconds=OUTBOX_SWEEP_SECONDS,
        # One buyer for all of a hypothesis run's examples (the fixture is made once for them),
        # and an example may end with its order still open: the cap on open orders is not what
        # these tests are about (services/orders/tests/test_open_orders.py is).
        max_open_orders_per_user=10_000,
    )
    payments_settings = PaymentsSettings(
        environment="test",
        jwt_key=TEST_JWT_KEY,
        outbox_sweep_seconds=OUTBOX_SWEEP_SECONDS,
        stripe_api_base=fake_stripe.base_url,
        stripe_max_network_retries=0,
        stripe_timeout_seconds=5,
        payment_lease_seconds=60,
    )
    orders_app = create_orders(orders_settings, mongo=AsyncMongoMockClient(), bus=orders_bus)
    payments_app = create_payments(
        payments_settings, mongo=AsyncMongoMockClient(), bus=payments_bus
    )
    confirm = StripeCharger.confirm
    hooks: list[Callable[[], Awaitable[None]]] = []

    async def confirm_with_hooks(self: StripeCharger, *args: Any, **kwargs: Any) -> None:
        while hooks:
            await hooks.pop(0)()
        await confirm(self, *args, **kwargs)

    monkeypatch.setattr(StripeCharger, "confirm", confirm_with_hooks)
    async with running(orders_app) as orders, running(payments_app) as payments:
        for client, app_settings in ((orders, orders_settings), (payments, payments_settings)):
            client.cookies.update(session_cookie(app_settings, user_id=BUYER))
        yield System(
            broker,
            orders_bus,
            payments_bus,
            orders_app,
            payments_app,
            orders,
            payments,
            fake_stripe,
            during_authorization=hooks,
        )
        assert await orders_bus.dead_letters() == []
        assert await payments_bus.dead_letters() == []


# --- the reproduction of issue 8 (item 5), and the expiry racing payment:created ---------------


@pytest.mark.parametrize("first", ["orders", "payments"])
async def test_a_payment_then_a_cancel_while_the_bus_is_paused_never_ends_cancelled_and_charged(
    system: System, first: str
) -> None:
    """NATS paused: POST /api/payments 201, then DELETE before payment:created reaches orders.
    Orders keeps the order cancelled, so nothing is captured: the authorization is voided,
    whichever service hears of the other first once NATS is back."""
    order_id = await system.open_order()
    system.nats_down()
    assert await system.pay(order_id) == 201
    assert await system.cancel(order_id) == 204
    await system.flush(system.orders_app if first == "orders" else system.payments_app)
    await system.settle()

    status, payments, intents = await system.outcome(order_id)
    assert status == "cancelled"
    assert payments == ["voided"]
    assert [(pi["status"], pi["amount_received"]) for pi in intents] == [("canceled", 0)]
    assert system.stripe.state.refunds() == []
    assert system.orders_bus.published_on(Subject.ORDER_COMPLETED) == []
    assert await system.invariant_problems(order_id) == []


@pytest.mark.parametrize("first", ["orders", "payments"])
@pytest.mark.parametrize("closing", ["expiry", "sweep", "both"])
async def test_a_payment_in_time_completes_however_long_the_bus_stays_down_past_the_expiry(
    system: System, first: str, closing: str
) -> None:
    """Paid (201) just before expiresAt, then NATS down past the expiry's grace and the sweep's:
    the expiry reaches payments (expiration publishes on its own connection) or the sweep runs,
    while payment:created still waits in payments' outbox. The order completes and is captured
    once, whichever service hears of the other first. (Before, orders cancelled it on the expiry
    or its own sweep and the authorization was voided: paid in time, no ticket.)"""
    order_id = await system.open_order()
    system.nats_down()
    assert await system.pay(order_id) == 201
    if closing in ("expiry", "both"):
        await system.expire(order_id)
    if closing in ("sweep", "both"):
        await system.sweep_payments()
    await system.flush(system.orders_app if first == "orders" else system.payments_app)
    await system.settle()

    status, payments, intents = await system.outcome(order_id)
    assert (status, payments) == ("complete", ["captured"])
    assert [(pi["status"], pi["amount_received"]) for pi in intents] == [("succeeded", CENTS)]
    assert system.orders_bus.published_on(Subject.ORDER_CANCELLED) == []
    assert system.orders_bus.published_on(Subject.PAYMENT_WINDOW_CLOSED) == []
    assert await system.invariant_problems(order_id) == []


@pytest.mark.parametrize("closing", ["expiry", "sweep"])
async def test_an_unpaid_order_is_cancelled_once_payments_closes_its_window(
    system: System, closing: str
) -> None:
    order_id = await system.open_order()
    if closing == "expiry":
        await system.expire(order_id)
    else:
        await system.sweep_payments()
    await system.settle()
    status, payments, intents = await system.outcome(order_id)
    assert (status, payments, intents) == ("cancelled", ["window-closed"], [])
    assert await system.pay(order_id) == 400
    assert await system.invariant_problems(order_id) == []


async def test_a_payment_that_reaches_orders_first_completes_and_is_captured(
    system: System,
) -> None:
    order_id = await system.open_order()
    assert await system.pay(order_id) == 201
    await system.settle()
    assert await system.cancel(order_id) == 400  # a paid order cannot be cancelled
    await system.expire(order_id)
    await system.settle()

    status, payments, intents = await system.outcome(order_id)
    assert (status, payments) == ("complete", ["captured"])
    assert [(pi["status"], pi["amount_received"]) for pi in intents] == [("succeeded", CENTS)]
    assert system.orders_bus.published_on(Subject.ORDER_CANCELLED) == []
    assert await system.invariant_problems(order_id) == []


async def test_a_cancel_landing_during_the_authorization_is_voided_and_the_buyer_told(
    system: System,
) -> None:
    order_id = await system.open_order()

    async def the_buyer_cancels_meanwhile() -> None:
        assert await system.cancel(order_id) == 204
        await system.payments_learns_of_the_cancel(order_id)

    system.during_authorization.append(the_buyer_cancels_meanwhile)
    assert await system.pay(order_id) == 400
    await system.settle()
    status, payments, intents = await system.outcome(order_id)
    assert (status, payments) == ("cancelled", ["voided"])
    assert [pi["status"] for pi in intents] == ["canceled"]
    assert await system.invariant_problems(order_id) == []


# --- every interleaving -----------------------------------------------------------------------

STEPS = st.sampled_from(
    [
        "pay",
        "pay",
        "cancel",
        "expire",
        "sweep payments",
        "nats down",
        "nats up",
        "flush orders",
        "flush payments",
        "redeliver payment:created",
        "redeliver payment:window-closed",
        "redeliver order:completed",
        "redeliver order:cancelled",
        "cancel during authorization",
    ]
)

INTERLEAVINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@INTERLEAVINGS
@given(steps=st.lists(STEPS, min_size=1, max_size=10))
async def test_any_interleaving_keeps_the_payment_invariants(
    system: System, steps: list[str]
) -> None:
    order_id = await system.open_order()
    accepted = cancelled_by_buyer = False
    for step in steps:
        if step == "pay":
            accepted |= await system.pay(order_id) == 201
        elif step == "cancel":
            cancelled_by_buyer |= await system.cancel(order_id) == 204
        elif step == "expire":
            await system.expire(order_id)
        elif step == "sweep payments":
            await system.sweep_payments()
        elif step == "nats down":
            system.nats_down()
        elif step == "nats up":
            system.nats_up()
        elif step == "flush orders":
            await system.flush(system.orders_app)
        elif step == "flush payments":
            await system.flush(system.payments_app)
        elif step.startswith("redeliver "):
            await system.redeliver(order_id, Subject(step.removeprefix("redeliver ")))
        else:  # the buyer's DELETE while Stripe authorizes: the payment attempt holds its lease

            async def cancel_meanwhile() -> None:
                nonlocal cancelled_by_buyer
                if await system.cancel(order_id) == 204:
                    cancelled_by_buyer = True
                    await system.payments_learns_of_the_cancel(order_id)

            system.during_authorization.append(cancel_meanwhile)
            accepted |= await system.pay(order_id) == 201
            system.during_authorization.clear()  # an attempt refused before authorizing
    await system.settle()

    status, payments, intents = await system.outcome(order_id)
    assert await system.invariant_problems(order_id) == [], (steps, status, payments, intents)
    captured = [pi for pi in intents if pi["amount_received"]]
    if status == "complete":
        assert payments == ["captured"]
        assert [(pi["status"], pi["amount_received"]) for pi in captured] == [("succeeded", CENTS)]
    else:
        assert captured == []
        assert all(pi["status"] != "requires_capture" for pi in intents)  # nothing left held
        assert set(payments) <= {"voided", "window-closed"}
    if accepted:  # a payment the buyer was told went through is settled one way or the other
        assert status in ("complete", "cancelled")
    if accepted and not cancelled_by_buyer:
        # Paid in time: no expiry, sweep or outage takes the ticket back.
        assert status == "complete", (steps, status, payments)
    completed = system.orders_bus.published_on(Subject.ORDER_COMPLETED)
    cancelled = system.orders_bus.published_on(Subject.ORDER_CANCELLED)
    assert not (
        any(e.data.id == order_id for e in completed)
        and any(e.data.id == order_id for e in cancelled)
    )
