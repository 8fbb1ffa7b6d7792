"""An order cancelled once paid gets its money back: once, whatever is redelivered or fails."""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import stripe

from ticketing_common.bus import RetryLater
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Event, OrderCancelled, OrderCreated, Subject
from ticketing_common.testing import running, session_cookie
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments import listeners, repository
from ticketing_payments.charges import StripeCharger
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings

Created = Callable[..., Event[OrderCreated]]
Cancelled = Callable[..., Event[OrderCancelled]]


@pytest.fixture
def no_retries(settings: Settings) -> Settings:
    """Stripe failures reach the handler at once, without the SDK's back-off."""
    return settings.model_copy(update={"stripe_max_network_retries": 0})


@pytest.fixture
async def quick_charger(no_retries: Settings) -> AsyncIterator[StripeCharger]:
    charger = StripeCharger(no_retries)
    yield charger
    await charger.close()


async def paid_order(
    db: Any, charger: StripeCharger, created: Event[OrderCreated]
) -> dict[str, Any]:
    """The order replicated and paid, as the route leaves it: its payment."""
    await listeners.on_order_created(db, created)
    order_id = created.data.id
    replica = await repository.get_order(db, order_id=order_id)
    assert replica is not None
    intent = await charger.order_intent(order_id=order_id, amount_cents=replica["priceCents"])
    await repository.set_payment_intent(db, order_id=order_id, payment_intent_id=intent.id)
    await charger.confirm(intent, order_id=order_id, token="tok_visa")
    payment: dict[str, Any] = await repository.create_payment(
        db,
        order_id=order_id,
        stripe_id=intent.id,
        amount_cents=replica["priceCents"],
        currency="usd",
    )
    return payment


async def payment_of(db: Any, order_id: str) -> dict[str, Any]:
    payment = await repository.get_payment_for_order(db, order_id=order_id)
    assert payment is not None
    return payment


def again(event: Event[Any]) -> Event[Any]:
    """The same event under a new envelope id: a redelivery JetStream cannot de-duplicate."""
    return event.model_copy(update={"id": uuid.uuid4().hex})


async def test_a_paid_order_cancelled_later_is_refunded_once(
    client: httpx.AsyncClient,
    place_order: Callable[..., Any],
    bus: InMemoryBus,
    db: Any,
    fake_stripe: FakeStripeServer,
    cancelled_event: Cancelled,
) -> None:
    """The buyer's DELETE landed while payment:created was still on its way to orders."""
    order_id = await place_order(price=42.5)
    res = await client.post("/api/payments", json={"token": "tok_visa", "orderId": order_id})
    assert res.status_code == 201
    cancel = cancelled_event(order_id)
    await bus.publish(cancel)
    await bus.drain()

    [intent] = fake_stripe.state.intents()
    [refund] = fake_stripe.state.refunds()
    assert (refund["payment_intent"], refund["amount"], refund["status"]) == (
        intent["id"],
        4250,
        "succeeded",
    )
    assert refund["metadata"] == {"orderId": order_id}
    payment = await payment_of(db, order_id)
    assert payment["refundId"] == refund["id"]
    assert payment["refundedAt"] is not None

    # Redelivered (and republished under a new id): no second refund, not even a Stripe call.
    requests = fake_stripe.state.requests
    await bus.publish(again(cancel))
    await bus.drain()
    assert len(fake_stripe.state.refunds()) == 1
    assert fake_stripe.state.requests == requests
    assert await bus.dead_letters() == []


async def test_a_duplicate_cancellation_refunds_nothing_more(
    db: Any,
    charger: StripeCharger,
    fake_stripe: FakeStripeServer,
    created_event: Created,
    cancelled_event: Cancelled,
) -> None:
    created = created_event()
    payment = await paid_order(db, charger, created)
    cancel = cancelled_event(created.data.id)
    for _ in range(3):
        await listeners.on_order_cancelled(db, charger, cancel)
    [refund] = fake_stripe.state.refunds()
    assert (await payment_of(db, created.data.id))["refundId"] == refund["id"]
    assert refund["payment_intent"] == payment["stripeId"]


async def test_a_refund_failure_raises_and_a_later_delivery_refunds_once(
    db: Any,
    quick_charger: StripeCharger,
    fake_stripe: FakeStripeServer,
    created_event: Created,
    cancelled_event: Cancelled,
) -> None:
    created = created_event()
    await paid_order(db, quick_charger, created)
    cancel = cancelled_event(created.data.id)
    fake_stripe.state.fail_next(1, path="/v1/refunds")
    with pytest.raises(stripe.APIError):
        await listeners.on_order_cancelled(db, quick_charger, cancel)
    assert fake_stripe.state.refunds() == []
    assert (await payment_of(db, created.data.id))["refundId"] is None

    await listeners.on_order_cancelled(db, quick_charger, cancel)  # the next delivery
    [refund] = fake_stripe.state.refunds()
    assert (await payment_of(db, created.data.id))["refundId"] == refund["id"]


async def test_a_refund_whose_answer_was_lost_is_not_made_twice(
    db: Any,
    quick_charger: StripeCharger,
    fake_stripe: FakeStripeServer,
    created_event: Created,
    cancelled_event: Cancelled,
) -> None:
    created = created_event()
    await paid_order(db, quick_charger, created)
    cancel = cancelled_event(created.data.id)
    fake_stripe.state.fail_next(1, after_commit=True, path="/v1/refunds")
    with pytest.raises(stripe.APIError):
        await listeners.on_order_cancelled(db, quick_charger, cancel)
    assert len(fake_stripe.state.refunds()) == 1  # Stripe refunded; we could not know

    await listeners.on_order_cancelled(db, quick_charger, cancel)
    [refund] = fake_stripe.state.refunds()  # replayed for the order's refund key
    assert (await payment_of(db, created.data.id))["refundId"] == refund["id"]


async def test_through_the_bus_a_failed_refund_is_retried_until_it_is_made(
    no_retries: Settings,
    mongo: Any,
    db: Any,
    fake_stripe: FakeStripeServer,
    created_event: Created,
    cancelled_event: Cancelled,
) -> None:
    bus = InMemoryBus("payments")  # 5 deliveries
    created = created_event()
    async with running(create_app(no_retries, mongo=mongo, bus=bus)) as client:
        client.cookies.update(session_cookie(no_retries, user_id=created.data.user_id))
        await bus.publish(created)
        await bus.drain()
        body = {"token": "tok_visa", "orderId": created.data.id}
        assert (await client.post("/api/payments", json=body)).status_code == 201
        fake_stripe.state.fail_next(2, path="/v1/refunds")  # two deliveries fail
        await bus.publish(cancelled_event(created.data.id))
        await bus.drain()
        assert await bus.dead_letters() == []
    [refund] = fake_stripe.state.refunds()
    assert (await payment_of(db, created.data.id))["refundId"] == refund["id"]


async def test_a_cancellation_waits_for_a_running_payment_attempt(
    db: Any,
    charger: StripeCharger,
    fake_stripe: FakeStripeServer,
    created_event: Created,
    cancelled_event: Cancelled,
) -> None:
    """Until the attempt ends, whether it charged is unknown: the event is deferred, not lost."""
    created = created_event()
    await listeners.on_order_created(db, created)
    order_id = created.data.id
    leased = await repository.lease_order(db, order_id=order_id, seconds=60)
    assert leased is not None
    cancel = cancelled_event(order_id)
    with pytest.raises(RetryLater, match="payment attempt"):
        await listeners.on_order_cancelled(db, charger, cancel)
    replica = await repository.get_order(db, order_id=order_id)
    assert replica is not None
    assert replica["status"] == "cancelled"  # applied at once: no new attempt can start

    # The attempt charged the card, then stored its payment and let the order go.
    intent = await charger.order_intent(order_id=order_id, amount_cents=2000)
    await charger.confirm(intent, order_id=order_id, token="tok_visa")
    await repository.create_payment(
        db, order_id=order_id, stripe_id=intent.id, amount_cents=2000, currency="usd"
    )
    await repository.release_order(db, order_id=order_id, lease=leased[0])

    await listeners.on_order_cancelled(db, charger, cancel)  # redelivered
    [refund] = fake_stripe.state.refunds()
    assert refund["payment_intent"] == intent.id


async def test_a_charge_whose_answer_was_lost_is_refunded_on_cancellation(
    client: httpx.AsyncClient,
    place_order: Callable[..., Any],
    bus: InMemoryBus,
    db: Any,
    fake_stripe: FakeStripeServer,
    cancelled_event: Cancelled,
) -> None:
    """Stripe charged, the buyer got a 502 and gave up, the order expired: money goes back."""
    order_id = await place_order(price=30)
    fake_stripe.state.fail_next(3, after_commit=True, path="/confirm")
    res = await client.post("/api/payments", json={"token": "tok_visa", "orderId": order_id})
    assert res.status_code == 502
    await bus.publish(cancelled_event(order_id))
    await bus.drain()

    [intent] = fake_stripe.state.intents()
    [refund] = fake_stripe.state.refunds()
    assert (refund["payment_intent"], refund["amount"]) == (intent["id"], 3000)
    payment = await payment_of(db, order_id)  # recorded, so the refund is on the books
    assert (payment["stripeId"], payment["refundId"]) == (intent["id"], refund["id"])
    assert bus.published_on(Subject.PAYMENT_CREATED) == []  # nothing to complete the order
    assert payment["_outbox"] == []


async def test_an_order_never_charged_is_cancelled_without_stripe(
    client: httpx.AsyncClient,
    place_order: Callable[..., Any],
    bus: InMemoryBus,
    db: Any,
    fake_stripe: FakeStripeServer,
    cancelled_event: Cancelled,
) -> None:
    unpaid = await place_order()
    declined = await place_order()
    res = await client.post(
        "/api/payments", json={"token": "tok_chargeDeclined", "orderId": declined}
    )
    assert res.status_code == 400
    requests = fake_stripe.state.requests
    for order_id in (unpaid, declined):
        await bus.publish(cancelled_event(order_id))
    await bus.drain()
    assert fake_stripe.state.refunds() == []
    # Only the declined order's PaymentIntent was looked up: not paid, nothing to refund.
    assert fake_stripe.state.requests == requests + 1
    for order_id in (unpaid, declined):
        assert await repository.get_payment_for_order(db, order_id=order_id) is None
    assert await bus.dead_letters() == []
