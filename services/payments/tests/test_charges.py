"""The Stripe client: aimed where the settings say, and nowhere else; one PaymentIntent per
order; exact cents; keys."""

from collections.abc import Mapping
from typing import Any

import pytest
import stripe
from pydantic import SecretStr

from ticketing_common.errors import BadRequestError, UpstreamError
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments.charges import (
    HTTPXClient,
    Intent,
    StripeCharger,
    confirm_key,
    intent_key,
    refund_key,
)
from ticketing_payments.money import to_cents
from ticketing_payments.settings import Settings


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


async def pay(charger: StripeCharger, order_id: str, token: str, amount_cents: int) -> str:
    """What the route does with Stripe: the order's PaymentIntent, confirmed unless it is paid."""
    intent = await charger.order_intent(order_id=order_id, amount_cents=amount_cents)
    if intent.status != "succeeded":
        await charger.confirm(intent, order_id=order_id, token=token)
    return intent.id


async def test_with_an_api_base_the_real_stripe_api_is_never_used(
    settings: Settings, fake_stripe: FakeStripeServer
) -> None:
    recorder = RecordingClient(forward=True)
    charger = StripeCharger(settings, http_client=recorder)
    try:
        intent_id = await pay(charger, "o1", "tok_visa", 1999)
    finally:
        await charger.close()
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
        jwt_key=SecretStr("test-jwt-key-0123456789abcdef0123456789"),
        stripe_key=SecretStr("sk_test_51RealLookingKey"),
    )
    recorder = RecordingClient(forward=False)
    charger = StripeCharger(real, http_client=recorder)
    try:
        with pytest.raises(UpstreamError, match="Payment provider unavailable"):
            await charger.order_intent(order_id="o1", amount_cents=1999)
    finally:
        await charger.close()
    assert recorder.urls == ["https://api.stripe.com/v1/payment_intents"]


async def test_every_attempt_on_an_order_finds_its_one_payment_intent(
    settings: Settings, fake_stripe: FakeStripeServer
) -> None:
    recorder = RecordingClient(forward=True)
    charger = StripeCharger(settings, http_client=recorder)
    try:
        first = await pay(charger, "o1", "pm_card_visa", 500)
        # A new token, as Stripe.js makes for every attempt: read back as paid, not charged.
        again = await pay(charger, "o1", "tok_mastercard", 500)
    finally:
        await charger.close()
    assert first == again
    [intent] = fake_stripe.state.intents()
    assert (intent["amount"], intent["currency"], intent["metadata"], intent["status"]) == (
        500,
        "usd",
        {"orderId": "o1"},
        "succeeded",
    )
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
    assert [pi["status"] for pi in fake_stripe.state.intents()] == ["succeeded"]
    assert [c["status"] for c in fake_stripe.state.charges()] == ["failed", "succeeded"]


async def test_confirming_what_another_attempt_paid_meanwhile_succeeds_without_a_charge(
    charger: StripeCharger, fake_stripe: FakeStripeServer
) -> None:
    stale = await charger.order_intent(order_id="o1", amount_cents=800)
    await charger.confirm(stale, order_id="o1", token="tok_visa")
    await charger.confirm(stale, order_id="o1", token="tok_mastercard")  # Stripe says succeeded
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


async def test_a_refund_is_made_once_per_order(
    charger: StripeCharger, fake_stripe: FakeStripeServer
) -> None:
    intent_id = await pay(charger, "o1", "tok_visa", 1234)
    first = await charger.refund(order_id="o1", intent_id=intent_id)
    again = await charger.refund(order_id="o1", intent_id=intent_id)
    assert first == again
    [refund] = fake_stripe.state.refunds()
    assert (refund["id"], refund["amount"], refund["payment_intent"]) == (first, 1234, intent_id)
    assert refund["metadata"] == {"orderId": "o1"}
    assert await charger.intent_status(intent_id) == "succeeded"


@pytest.mark.parametrize(
    ("dollars", "cents"),
    [(19.99, 1999), (0.01, 1), (0.1, 10), (20, 2000), ("1000000.00", 100000000), (1.005e2, 10050)],
)
def test_to_cents_is_exact(dollars: Any, cents: int) -> None:
    assert to_cents(dollars) == cents
    assert isinstance(to_cents(dollars), int)


@pytest.mark.parametrize("dollars", [19.999, "0.001", "NaN", "Infinity"])
def test_to_cents_refuses_fractions_of_a_cent(dollars: Any) -> None:
    with pytest.raises(ValueError, match="whole number of cents"):
        to_cents(dollars)


def test_the_payment_intent_key_is_per_order_only() -> None:
    assert intent_key(order_id="o1") == "pi-order-o1"
    assert intent_key(order_id="o1") != intent_key(order_id="o2")
    assert refund_key(order_id="o1") == "refund-o1"


def test_the_confirmation_key_is_per_order_and_card() -> None:
    key = confirm_key(order_id="o1", token="tok_visa")
    assert key == confirm_key(order_id="o1", token="tok_visa")
    assert key != confirm_key(order_id="o1", token="tok_mastercard")
    assert key != confirm_key(order_id="o2", token="tok_visa")
    assert key != intent_key(order_id="o1")
    assert "tok_visa" not in key
    assert len(key) <= 255  # Stripe's limit
