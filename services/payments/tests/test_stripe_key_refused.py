"""Stripe refusing our API key (401: revoked or rotated; 403: a restricted key missing a
permission) is our configuration, never the event's or the buyer's fault: settling waits for it
as for any dependency down (held, never dead-lettered), and a buyer is told payments are
unavailable (503 in the error shape), not that the card was declined."""

from typing import Any

import httpx
import pytest

from ticketing_common.bus import DependencyUnavailable
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.mongo import Database
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments import repository
from ticketing_payments.charges import AUTHORIZED, StripeCharger
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings
from ticketing_testing.apps import only_error, running, session_cookie
from ticketing_testing.events import order_completed, order_created
from ticketing_testing.waiting import eventually

UNAVAILABLE = {"message": "Payment provider unavailable, please try again"}
# The statuses Stripe answers a refused key with (401 unauthorized, 403 restricted key).
REFUSED = [401, 403]


@pytest.fixture
def no_retries(settings: Settings) -> Settings:
    """Stripe's answers reach the code at once, without the SDK's back-off."""
    return settings.model_copy(update={"stripe_max_network_retries": 0})


async def authorize(charger: StripeCharger, order_id: str) -> str:
    intent = await charger.order_intent(order_id=order_id, amount_cents=900)
    if intent.status not in AUTHORIZED:
        await charger.confirm(intent, order_id=order_id, token="tok_visa")
    return intent.id


@pytest.mark.parametrize("status", REFUSED)
async def test_a_refused_key_while_settling_is_stripe_down(
    no_retries: Settings, fake_stripe: FakeStripeServer, status: int
) -> None:
    charger = StripeCharger(no_retries)
    try:
        intent_id = await authorize(charger, "o1")
        for settle, path in ((charger.capture, "/capture"), (charger.void, "/cancel")):
            fake_stripe.state.fail_next(1, status=status, path=path)
            with pytest.raises(DependencyUnavailable, match="Stripe unavailable") as raised:
                await settle(order_id="o1", intent_id=intent_id)
            assert raised.value.dependency == "stripe"
    finally:
        await charger.close()
    assert fake_stripe.state.intents()[0]["status"] == "requires_capture"


async def test_through_the_bus_a_capture_refused_for_the_key_is_held_then_made(
    no_retries: Settings, mongo: Any, db: Database, fake_stripe: FakeStripeServer
) -> None:
    """One delivery allowed: a refused key that used it up would dead-letter the capture (an
    authorization never captured); held, it is made once Stripe takes the key again."""
    bus = InMemoryBus("payments", max_deliver=1, max_hold_delay=0.1)
    created = order_created()
    order_id = created.data.id
    async with running(create_app(no_retries, mongo=mongo, bus=bus)) as client:
        client.cookies.update(session_cookie(no_retries, user_id=created.data.user_id))
        await bus.publish(created)
        await bus.drain()
        paid = await client.post("/api/payments", json={"token": "tok_visa", "orderId": order_id})
        assert paid.status_code == 201, paid.text
        fake_stripe.state.fail_next(3, status=401, path="/capture")
        await bus.publish(order_completed(order_id))

        async def held() -> bool:
            return bus.dispatcher.holding

        await eventually(held)
        assert await bus.dead_letters() == []
        await bus.drain()
        assert await bus.dead_letters() == []
    [intent] = fake_stripe.state.intents()
    assert intent["status"] == "succeeded"
    payment = await repository.get_payment_for_order(db, order_id=order_id)
    assert payment is not None
    assert payment["status"] == "captured"


@pytest.mark.parametrize("status", REFUSED)
async def test_a_refused_key_is_503_payments_unavailable_for_the_buyer(
    settings: Settings,
    mongo: Any,
    bus: InMemoryBus,
    db: Database,
    fake_stripe: FakeStripeServer,
    status: int,
) -> None:
    created = order_created()
    async with running(create_app(settings, mongo=mongo, bus=bus)) as client:
        client.cookies.update(session_cookie(settings, user_id=created.data.user_id))
        await bus.publish(created)
        await bus.drain()
        fake_stripe.state.fail_next(1, status=status)
        res: httpx.Response = await client.post(
            "/api/payments", json={"token": "tok_visa", "orderId": created.data.id}
        )
    assert res.status_code == 503
    assert only_error(res) == UNAVAILABLE  # the error shape: no trace, no "declined"
    assert await repository.get_payment_for_order(db, order_id=created.data.id) is None
