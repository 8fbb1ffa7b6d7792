"""Settling as orders decided: order:completed captures the authorization, order:cancelled voids
it; once, whatever is redelivered, duplicated or fails, and never both."""

from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
import pytest

from ticketing_common.bus import DependencyUnavailable, RetryLater
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Event, EventData, OrderCreated, Subject
from ticketing_common.mongo import Database
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments import listeners, replica, repository
from ticketing_payments.charges import StripeCharger
from ticketing_payments.main import create_app
from ticketing_payments.replica import OrderReplicaDoc
from ticketing_payments.settings import Settings
from ticketing_payments.settle import SettlementError
from ticketing_testing.apps import outbox_on, running, session_cookie
from ticketing_testing.events import (
    delivered,
    order_cancelled,
    order_completed,
    order_created,
    redelivered,
)

PlaceOrder = Callable[..., Awaitable[str]]
Pay = Callable[..., Awaitable[httpx.Response]]
D = TypeVar("D", bound=EventData)


def runtime_on(db: Database, charger: StripeCharger | None = None) -> Any:
    """What the event handlers use of the service's runtime, without a running app."""
    return SimpleNamespace(db=db, outbox=outbox_on(db, repository.PAYMENTS), charger=charger)


@pytest.fixture
def no_retries(settings: Settings) -> Settings:
    """Stripe failures reach the handler at once, without the SDK's back-off."""
    return settings.model_copy(update={"stripe_max_network_retries": 0})


@pytest.fixture
async def quick_charger(no_retries: Settings) -> AsyncIterator[StripeCharger]:
    charger = StripeCharger(no_retries)
    yield charger
    await charger.close()


async def replica_of(db: Database, order_id: str) -> OrderReplicaDoc:
    replicated = await replica.get_order(db, order_id=order_id)
    assert replicated is not None
    return replicated


async def authorized_order(
    db: Database, charger: StripeCharger, created: Event[OrderCreated]
) -> dict[str, Any]:
    """The order replicated and paid, as the route leaves it: its (authorized) payment."""
    await listeners.on_order_created(runtime_on(db), created)
    order_id = created.data.id
    replicated = await replica_of(db, order_id)
    intent = await charger.order_intent(order_id=order_id, amount_cents=replicated["priceCents"])
    await replica.set_payment_intent(db, order_id=order_id, payment_intent_id=intent.id)
    await charger.confirm(intent, order_id=order_id, token="tok_visa")
    payment: dict[str, Any] = await repository.create_payment(
        outbox_on(db, repository.PAYMENTS),
        order_id=order_id,
        stripe_id=intent.id,
        amount_cents=replicated["priceCents"],
        currency="usd",
    )
    return payment


async def decided_on_an_authorized_order(
    decide: Callable[[str], Event[D]], db: Database, charger: StripeCharger, price: float = 20.0
) -> Event[D]:
    """Orders' decision (`decide`: order_completed or order_cancelled) on an order replicated
    and authorized as the route leaves it: the event payments settles on."""
    created = order_created(price=price)
    await authorized_order(db, charger, created)
    return decide(created.data.id)


async def payment_of(db: Database, order_id: str) -> dict[str, Any]:
    payment = await repository.get_payment_for_order(db, order_id=order_id)
    assert payment is not None
    return payment


def intent_of(fake: FakeStripeServer, order_id: str) -> dict[str, Any]:
    [intent] = [pi for pi in fake.state.intents() if pi["metadata"].get("orderId") == order_id]
    return intent


async def settlement_of(fake: FakeStripeServer, db: Database, order_id: str) -> tuple[str, str]:
    """Where the order's money stands: its PaymentIntent's status at Stripe, its payment's here."""
    return intent_of(fake, order_id)["status"], (await payment_of(db, order_id))["status"]


async def pay(client: httpx.AsyncClient, order_id: str) -> httpx.Response:
    return await client.post("/api/payments", json={"token": "tok_visa", "orderId": order_id})


async def stripe_is_not_asked_again(
    bus: InMemoryBus, fake: FakeStripeServer, again: Event[Any]
) -> None:
    """Deliver `again`, an event of an order already settled: Stripe gets no request (the
    payment or the replica says it is done), and nothing is dead-lettered."""
    requests = fake.state.requests
    await delivered(bus, again)
    assert fake.state.requests == requests
    assert await bus.dead_letters() == []


# --- capture on order:completed -------------------------------------------------------------------


async def test_order_completed_captures_the_authorization_once(
    paid_order: PlaceOrder, bus: InMemoryBus, db: Database, fake_stripe: FakeStripeServer
) -> None:
    order_id = await paid_order(price=42.5)
    assert intent_of(fake_stripe, order_id)["status"] == "requires_capture"
    completed = order_completed(order_id)
    await delivered(bus, completed)

    intent = intent_of(fake_stripe, order_id)
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 4250)
    payment = await payment_of(db, order_id)
    assert (payment["status"], payment["stripeId"]) == ("captured", intent["id"])
    assert payment["capturedAt"] is not None
    replicated = await replica_of(db, order_id)
    assert (replicated["status"], replicated["version"]) == ("complete", 1)

    # Redelivered (and republished under a new id): no second capture, not even a Stripe call.
    await stripe_is_not_asked_again(bus, fake_stripe, redelivered(completed))
    assert [c["amount_captured"] for c in fake_stripe.state.charges()] == [4250]


async def test_a_capture_failure_is_dependency_unavailable_and_a_later_delivery_captures(
    db: Database,
    quick_charger: StripeCharger,
    fake_stripe: FakeStripeServer,
) -> None:
    completed = await decided_on_an_authorized_order(order_completed, db, quick_charger)
    fake_stripe.state.fail_next(1, status=503, path="/capture")
    with pytest.raises(DependencyUnavailable):
        await listeners.on_order_completed(runtime_on(db, quick_charger), completed)
    held = await settlement_of(fake_stripe, db, completed.data.id)
    assert held == ("requires_capture", "authorized")

    await listeners.on_order_completed(
        runtime_on(db, quick_charger), completed
    )  # the next delivery
    assert await settlement_of(fake_stripe, db, completed.data.id) == ("succeeded", "captured")


async def test_a_capture_whose_answer_was_lost_is_not_made_twice(
    db: Database,
    quick_charger: StripeCharger,
    fake_stripe: FakeStripeServer,
) -> None:
    completed = await decided_on_an_authorized_order(order_completed, db, quick_charger, 30)
    fake_stripe.state.fail_next(1, after_commit=True, path="/capture")
    with pytest.raises(DependencyUnavailable):
        await listeners.on_order_completed(runtime_on(db, quick_charger), completed)
    assert intent_of(fake_stripe, completed.data.id)["status"] == "succeeded"  # we cannot know

    await listeners.on_order_completed(
        runtime_on(db, quick_charger), completed
    )  # replayed for the key
    assert [c["amount_captured"] for c in fake_stripe.state.charges()] == [3000]
    assert (await payment_of(db, completed.data.id))["status"] == "captured"


async def test_through_the_bus_a_failed_capture_is_retried_until_it_is_made(
    no_retries: Settings,
    mongo: Any,
    db: Database,
    fake_stripe: FakeStripeServer,
) -> None:
    bus = InMemoryBus("payments")  # 5 deliveries
    created = order_created()
    async with running(create_app(no_retries, mongo=mongo, bus=bus)) as client:
        client.cookies.update(session_cookie(no_retries, user_id=created.data.user_id))
        await delivered(bus, created)
        assert (await pay(client, created.data.id)).status_code == 201
        fake_stripe.state.fail_next(2, path="/capture")  # two deliveries fail
        await delivered(bus, order_completed(created.data.id))
        assert await bus.dead_letters() == []
    assert await settlement_of(fake_stripe, db, created.data.id) == ("succeeded", "captured")


async def test_a_complete_order_without_a_payment_is_a_settlement_error(
    db: Database, charger: StripeCharger
) -> None:
    """Orders completes only on our payment:created: this cannot happen unless data was lost,
    and retrying cannot fix it, so it ends dead-lettered, for a person."""
    created = order_created()
    await listeners.on_order_created(runtime_on(db), created)
    with pytest.raises(SettlementError, match="no payment"):
        await listeners.on_order_completed(
            runtime_on(db, charger), order_completed(created.data.id)
        )


async def test_an_authorization_that_cannot_be_captured_is_a_settlement_error(
    db: Database,
    charger: StripeCharger,
    fake_stripe: FakeStripeServer,
) -> None:
    """E.g. Stripe released it after 7 days uncaptured: the order is complete, unpaid."""
    created = order_created()
    payment = await authorized_order(db, charger, created)
    await charger.void(order_id="expired-by-stripe", intent_id=payment["stripeId"])
    with pytest.raises(SettlementError, match="canceled"):
        await listeners.on_order_completed(
            runtime_on(db, charger), order_completed(created.data.id)
        )
    assert (await payment_of(db, created.data.id))["status"] == "authorized"


# --- void on order:cancelled ----------------------------------------------------------------------


async def test_a_payment_accepted_while_the_cancel_was_on_its_way_is_voided_once(
    paid_order: PlaceOrder, bus: InMemoryBus, db: Database, fake_stripe: FakeStripeServer
) -> None:
    """The buyer's DELETE landed while payment:created was still on its way to orders: orders
    keeps the order cancelled, so the authorization is released and nothing is taken."""
    order_id = await paid_order(price=42.5)
    cancel = order_cancelled(order_id)
    await delivered(bus, cancel)

    intent = intent_of(fake_stripe, order_id)
    assert (intent["status"], intent["amount_received"], intent["cancellation_reason"]) == (
        "canceled",
        0,
        "abandoned",
    )
    assert [c["captured"] for c in fake_stripe.state.charges()] == [False]
    assert fake_stripe.state.refunds() == []  # nothing was taken, nothing to give back
    payment = await payment_of(db, order_id)
    assert (payment["status"], payment["capturedAt"]) == ("voided", None)
    assert payment["voidedAt"] is not None

    # Redelivered (and republished under a new id): not even a Stripe call.
    await stripe_is_not_asked_again(bus, fake_stripe, redelivered(cancel))


async def test_a_void_failure_is_dependency_unavailable_and_a_later_delivery_voids(
    db: Database,
    quick_charger: StripeCharger,
    fake_stripe: FakeStripeServer,
) -> None:
    cancel = await decided_on_an_authorized_order(order_cancelled, db, quick_charger)
    fake_stripe.state.fail_next(1, path="/cancel")
    with pytest.raises(DependencyUnavailable):
        await listeners.on_order_cancelled(runtime_on(db, quick_charger), cancel)
    assert intent_of(fake_stripe, cancel.data.id)["status"] == "requires_capture"
    # Applied all the same: no new attempt can start.
    assert (await replica_of(db, cancel.data.id))["status"] == "cancelled"

    await listeners.on_order_cancelled(runtime_on(db, quick_charger), cancel)
    assert await settlement_of(fake_stripe, db, cancel.data.id) == ("canceled", "voided")


async def test_a_void_whose_answer_was_lost_is_replayed_not_refused(
    db: Database,
    quick_charger: StripeCharger,
    fake_stripe: FakeStripeServer,
) -> None:
    cancel = await decided_on_an_authorized_order(order_cancelled, db, quick_charger)
    fake_stripe.state.fail_next(1, after_commit=True, path="/cancel")
    with pytest.raises(DependencyUnavailable):
        await listeners.on_order_cancelled(runtime_on(db, quick_charger), cancel)
    assert intent_of(fake_stripe, cancel.data.id)["status"] == "canceled"

    await listeners.on_order_cancelled(runtime_on(db, quick_charger), cancel)
    assert (await payment_of(db, cancel.data.id))["status"] == "voided"


async def test_a_cancellation_waits_for_a_running_payment_attempt(
    db: Database,
    charger: StripeCharger,
    fake_stripe: FakeStripeServer,
) -> None:
    """Until the attempt ends, whether it authorized is unknown: deferred, not lost."""
    created = order_created()
    await listeners.on_order_created(runtime_on(db), created)
    order_id = created.data.id
    leased = await replica.lease_order(db, order_id=order_id, seconds=60)
    assert leased is not None
    cancel = order_cancelled(order_id)
    with pytest.raises(RetryLater, match="payment attempt"):
        await listeners.on_order_cancelled(runtime_on(db, charger), cancel)
    # Applied at once: no new attempt can start.
    assert (await replica_of(db, order_id))["status"] == "cancelled"

    # The attempt authorized the card, then stored its payment and let the order go.
    intent = await charger.order_intent(order_id=order_id, amount_cents=2000)
    await charger.confirm(intent, order_id=order_id, token="tok_visa")
    await repository.create_payment(
        outbox_on(db, repository.PAYMENTS),
        order_id=order_id,
        stripe_id=intent.id,
        amount_cents=2000,
        currency="usd",
    )
    await replica.release_order(db, order_id=order_id, lease=leased[0])

    await listeners.on_order_cancelled(runtime_on(db, charger), cancel)  # redelivered
    assert intent_of(fake_stripe, order_id)["status"] == "canceled"


async def test_an_authorization_whose_answer_was_lost_is_voided_on_cancellation(
    place_order: PlaceOrder,
    pay_losing_the_answer: Pay,
    bus: InMemoryBus,
    db: Database,
    fake_stripe: FakeStripeServer,
) -> None:
    """Stripe authorized, the buyer got a 502 and gave up, the order expired: released."""
    order_id = await place_order(price=30)
    assert (await pay_losing_the_answer(order_id)).status_code == 502
    assert intent_of(fake_stripe, order_id)["status"] == "requires_capture"
    await delivered(bus, order_cancelled(order_id))

    assert intent_of(fake_stripe, order_id)["status"] == "canceled"
    assert await repository.get_payment_for_order(db, order_id=order_id) is None
    assert (await replica_of(db, order_id))["paymentIntentCanceled"] is True
    assert bus.published_on(Subject.PAYMENT_CREATED) == []  # nothing to complete the order
    await stripe_is_not_asked_again(bus, fake_stripe, order_cancelled(order_id))  # a duplicate


async def test_an_order_never_paid_is_cancelled_without_stripe_and_a_declined_one_closed(
    client: httpx.AsyncClient,
    place_order: Callable[..., Any],
    bus: InMemoryBus,
    db: Database,
    fake_stripe: FakeStripeServer,
) -> None:
    unpaid = await place_order()
    declined = await place_order()
    res = await client.post(
        "/api/payments", json={"token": "tok_chargeDeclined", "orderId": declined}
    )
    assert res.status_code == 400
    requests = fake_stripe.state.requests
    await delivered(bus, *(order_cancelled(order_id) for order_id in (unpaid, declined)))
    # Only the declined order's PaymentIntent is canceled, so that no attempt that outlived
    # its lease can confirm it any more.
    assert fake_stripe.state.requests == requests + 1
    assert intent_of(fake_stripe, declined)["status"] == "canceled"
    for order_id in (unpaid, declined):
        assert await repository.get_payment_for_order(db, order_id=order_id) is None
    assert await bus.dead_letters() == []


async def test_a_cancelled_order_whose_money_was_captured_is_a_settlement_error(
    db: Database,
    charger: StripeCharger,
    fake_stripe: FakeStripeServer,
) -> None:
    """Only order:completed captures, and orders never cancels a complete order: were it to
    happen, it is loud, not silently refunded."""
    created = order_created()
    payment = await authorized_order(db, charger, created)
    await charger.capture(order_id=created.data.id, intent_id=payment["stripeId"])
    with pytest.raises(SettlementError, match="succeeded"):
        await listeners.on_order_cancelled(
            runtime_on(db, charger), order_cancelled(created.data.id)
        )
