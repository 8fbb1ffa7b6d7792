"""The Stripe client: aimed where the settings say, and nowhere else; exact cents; keys."""

from collections.abc import Mapping
from typing import Any

import pytest
import stripe
from pydantic import SecretStr

from ticketing_common.errors import UpstreamError
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments.charges import HTTPXClient, StripeCharger, idempotency_key
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


async def test_with_an_api_base_the_real_stripe_api_is_never_used(
    settings: Settings, fake_stripe: FakeStripeServer
) -> None:
    recorder = RecordingClient(forward=True)
    charger = StripeCharger(settings, http_client=recorder)
    try:
        intent_id = await charger.charge(order_id="o1", token="tok_visa", amount_cents=1999)
    finally:
        await charger.close()
    assert recorder.urls == [f"{fake_stripe.base_url}/v1/payment_intents"]
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
            await charger.charge(order_id="o1", token="tok_visa", amount_cents=1999)
    finally:
        await charger.close()
    assert recorder.urls == ["https://api.stripe.com/v1/payment_intents"]


async def test_the_sdk_sends_the_idempotency_key_and_form_body(
    settings: Settings, fake_stripe: FakeStripeServer
) -> None:
    charger = StripeCharger(settings)
    try:
        first = await charger.charge(order_id="o1", token="pm_card_visa", amount_cents=500)
        again = await charger.charge(order_id="o1", token="pm_card_visa", amount_cents=500)
    finally:
        await charger.close()
    assert first == again  # replayed by key: one charge
    [intent] = fake_stripe.state.intents()
    assert (intent["amount"], intent["currency"], intent["metadata"]) == (
        500,
        "usd",
        {"orderId": "o1"},
    )


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


def test_the_idempotency_key_is_per_order_and_card() -> None:
    key = idempotency_key(order_id="o1", token="tok_visa")
    assert key == idempotency_key(order_id="o1", token="tok_visa")
    assert key != idempotency_key(order_id="o1", token="tok_mastercard")
    assert key != idempotency_key(order_id="o2", token="tok_visa")
    assert "tok_visa" not in key
    assert len(key) <= 255  # Stripe's limit
