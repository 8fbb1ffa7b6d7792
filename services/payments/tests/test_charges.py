"""The Stripe client: aimed where the settings say, and nowhere else; one PaymentIntent per
order, authorized, then captured or voided once; exact cents; keys."""

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import stripe
from pydantic import SecretStr

from ticketing_common.bus import DependencyUnavailable
from ticketing_common.errors import BadRequestError, UpstreamError
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments.charges import (
    AUTHORIZED,
    HTTPXClient,
    Intent,
    StripeCharger,
    capture_key,
    confirm_key,
    intent_key,
    void_key,
)
from ticketing_payments.settings import Settings
from ticketing_testing.apps import TEST_JWT_KEY


class RecordingClient(HTTPXClient):
    """Records every URL the SDK requests; forwards it, or refuses it without any network."""

    def __init__(self, *, forward: bool) -> None:
        super().__init__(timeout=5)
        self.forward = forward
        self.urls: list[str] = []

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> Any:
        self.urls.append(url)
        if not self.forward:
            raise stripe.APIConnectionError("recorded, not sent")  # type: ignore[no-untyped-call]
        return await super().request_async(method, url, headers, post_data)


@contextlib.asynccontextmanager
async def recorded(
    settings: Settings, *, forward: bool
) -> AsyncIterator[tuple[StripeCharger, RecordingClient]]:
    """A charger on `settings` whose every request is recorded, and its recorder."""
    recorder = RecordingClient(forward=forward)
    charger = StripeCharger(settings, http_client=recorder)
    try:
        yield charger, recorder
    finally:
        await charger.close()


async def pay(charger: StripeCharger, order_id: str, token: str, amount_cents: int) -> str:
    """What the route does with Stripe: the order's PaymentIntent, confirmed (authorized)
    unless it is already."""
    intent = await charger.order_intent(order_id=order_id, amount_cents=amount_cents)
    if intent.status not in AUTHORIZED:
        await charger.confirm(intent, order_id=order_id, token=token)
    return intent.id


async def test_with_an_api_base_the_real_stripe_api_is_never_used(
    settings: Settings, fake_stripe: FakeStripeServer
) -> None:
    async with recorded(settings, forward=True) as (charger, recorder):
        intent_id = await pay(charger, "o1", "tok_visa", 1999)
    base = fake_stripe.base_url
    assert recorder.urls == [
        f"{base}/v1/payment_intents",
        f"{base}/v1/payment_intents/{intent_id}/confirm",
    ]
    assert not any("stripe.com" in url for url in recorder.urls)
    assert [pi["id"] for pi in fake_stripe.state.intents()] == [intent_id]


async def test_without_an_api_base_a_real_key_goes_to_api_stripe_com() -> None:
    real = Settings(
        environment="production",
        jwt_key=SecretStr(TEST_JWT_KEY),
        stripe_key=SecretStr("sk_test_51RealLookingKey"),
    )
    async with recorded(real, forward=False) as (charger, recorder):
        with pytest.raises(UpstreamError, match="Payment provider unavailable"):
            await charger.order_intent(order_id="o1", amount_cents=1999)
    assert recorder.urls == ["https://api.stripe.com/v1/payment_intents"]


async def test_every_attempt_on_an_order_finds_its_one_payment_intent(
    settings: Settings, fake_stripe: FakeStripeServer
) -> None:
    async with recorded(settings, forward=True) as (charger, recorder):
        first = await pay(charger, "o1", "pm_card_visa", 500)
        # A new token, as Stripe.js makes for every attempt: read back as authorized, not
        # authorized again.
        again = await pay(charger, "o1", "tok_mastercard", 500)
    assert first == again
    [intent] = fake_stripe.state.intents()
    assert (intent["amount"], intent["currency"], intent["metadata"], intent["status"]) == (
        500,
        "usd",
        {"orderId": "o1"},
        "requires_capture",
    )
    assert intent["capture_method"] == "manual"
    assert len(fake_stripe.state.charges()) == 1
    base = f"{fake_stripe.base_url}/v1/payment_intents"
    assert recorder.urls == [base, f"{base}/{first}/confirm", base, f"{base}/{first}"]


async def test_a_declined_card_leaves_the_intent_for_another(
    charger: StripeCharger, fake_stripe: FakeStripeServer
) -> None:
    with pytest.raises(BadRequestError, match="Your card was declined"):
        await pay(charger, "o1", "tok_chargeDeclined", 800)
    intent = await charger.order_intent(order_id="o1", amount_cents=800)
    assert intent.status == "requires_payment_method"
    await charger.confirm(intent, order_id="o1", token="pm_card_visa")
    assert [pi["status"] for pi in fake_stripe.state.intents()] == ["requires_capture"]
    assert [c["status"] for c in fake_stripe.state.charges()] == ["failed", "succeeded"]


async def test_confirming_what_another_attempt_authorized_meanwhile_does_not_authorize_again(
    charger: StripeCharger, fake_stripe: FakeStripeServer
) -> None:
    stale = await charger.order_intent(order_id="o1", amount_cents=800)
    await charger.confirm(stale, order_id="o1", token="tok_visa")
    # Stripe refuses, saying requires_capture: authorized, so the attempt stands.
    await charger.confirm(stale, order_id="o1", token="tok_mastercard")
    assert len(fake_stripe.state.charges()) == 1


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("processing", "still processing"),
        ("canceled", "Payment could not be processed"),
    ],
)
async def test_an_intent_that_cannot_be_confirmed_is_not_sent(
    charger: StripeCharger, fake_stripe: FakeStripeServer, status: str, message: str
) -> None:
    with pytest.raises(BadRequestError, match=message):
        await charger.confirm(Intent(id="pi_x", status=status), order_id="o1", token="tok_visa")
    assert fake_stripe.state.requests == 0


async def test_a_capture_is_made_once_per_order(
    charger: StripeCharger, fake_stripe: FakeStripeServer
) -> None:
    intent_id = await pay(charger, "o1", "tok_visa", 1234)
    assert await charger.capture(order_id="o1", intent_id=intent_id) == "succeeded"
    # Redelivered: replayed for the order's key, no second capture.
    assert await charger.capture(order_id="o1", intent_id=intent_id) == "succeeded"
    [intent] = fake_stripe.state.intents()
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 1234)
    [charge] = fake_stripe.state.charges()
    assert charge["amount_captured"] == 1234


async def test_a_capture_stripe_no_longer_replays_reports_the_intent_captured(
    charger: StripeCharger, fake_stripe: FakeStripeServer
) -> None:
    """Stripe keeps keys for 24 hours: past that, a capture again is a refusal that carries
    the PaymentIntent, captured; that is a success, not an error."""
    intent_id = await pay(charger, "o1", "tok_visa", 1234)
    await charger.capture(order_id="o1", intent_id=intent_id)
    await charger.capture(order_id="o1-key-expired", intent_id=intent_id)  # another key
    assert await charger.capture(order_id="o1-key-expired", intent_id=intent_id) == "succeeded"
    [charge] = fake_stripe.state.charges()
    assert charge["amount_captured"] == 1234


async def test_a_void_releases_the_authorization_once(
    charger: StripeCharger, fake_stripe: FakeStripeServer
) -> None:
    intent_id = await pay(charger, "o1", "tok_visa", 900)
    assert await charger.void(order_id="o1", intent_id=intent_id) == "canceled"
    assert await charger.void(order_id="o1", intent_id=intent_id) == "canceled"  # replayed
    assert await charger.void(order_id="o1-other", intent_id=intent_id) == "canceled"  # refused
    [intent] = fake_stripe.state.intents()
    assert (intent["status"], intent["cancellation_reason"], intent["amount_received"]) == (
        "canceled",
        "abandoned",
        0,
    )
    # Canceled for good: neither a capture nor a late confirmation takes anything now.
    assert await charger.capture(order_id="o1", intent_id=intent_id) == "canceled"
    assert [c["captured"] for c in fake_stripe.state.charges()] == [False]


async def test_a_void_of_a_captured_payment_reports_it_captured(
    charger: StripeCharger, fake_stripe: FakeStripeServer
) -> None:
    intent_id = await pay(charger, "o1", "tok_visa", 900)
    await charger.capture(order_id="o1", intent_id=intent_id)
    assert await charger.void(order_id="o1", intent_id=intent_id) == "succeeded"
    assert fake_stripe.state.intents()[0]["status"] == "succeeded"


@pytest.mark.parametrize("failure", [{"status": 500}, {"status": 503}, {"status": 429}])
async def test_stripe_failing_while_settling_is_a_dependency_unavailable(
    settings: Settings, fake_stripe: FakeStripeServer, failure: dict[str, int]
) -> None:
    """Not the event's fault: the bus keeps it until Stripe answers again."""
    charger = StripeCharger(settings.model_copy(update={"stripe_max_network_retries": 0}))
    try:
        intent_id = await pay(charger, "o1", "tok_visa", 900)
        for settle in (charger.capture, charger.void):
            fake_stripe.state.fail_next(1, **failure)
            with pytest.raises(DependencyUnavailable, match="Stripe unavailable"):
                await settle(order_id="o1", intent_id=intent_id)
    finally:
        await charger.close()
    assert fake_stripe.state.intents()[0]["status"] == "requires_capture"


async def test_stripe_unreachable_while_settling_is_a_dependency_unavailable(
    settings: Settings,
) -> None:
    # Every request a connection error.
    async with recorded(settings, forward=False) as (charger, _):
        with pytest.raises(DependencyUnavailable):
            await charger.capture(order_id="o1", intent_id="pi_1")
        with pytest.raises(DependencyUnavailable):
            await charger.void(order_id="o1", intent_id="pi_1")


async def test_settling_an_unknown_intent_is_stripes_refusal_not_an_outage(
    charger: StripeCharger,
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="No such payment_intent"):
        await charger.capture(order_id="o1", intent_id="pi_nope")


def test_the_payment_intent_key_is_per_order_only() -> None:
    assert intent_key(order_id="o1") == "pi-order-o1"
    assert intent_key(order_id="o1") != intent_key(order_id="o2")
    keys = {intent_key(order_id="o1"), capture_key(order_id="o1"), void_key(order_id="o1")}
    assert len(keys) == 3  # each its own endpoint: a shared key would be an idempotency error


def test_the_confirmation_key_is_per_order_and_card() -> None:
    key = confirm_key(order_id="o1", token="tok_visa")
    assert key == confirm_key(order_id="o1", token="tok_visa")
    assert key != confirm_key(order_id="o1", token="tok_mastercard")
    assert key != confirm_key(order_id="o2", token="tok_visa")
    assert key != intent_key(order_id="o1")
    assert "tok_visa" not in key
    assert len(key) <= 255  # Stripe's limit
