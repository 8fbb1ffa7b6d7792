"""The fake behaves as the Stripe SDK expects Stripe to, for what the payments service uses."""

import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import pytest
import stripe

from ticketing_fakestripe import FakeStripeServer
from ticketing_fakestripe.__main__ import main
from ticketing_fakestripe.server import require_loopback
from ticketing_fakestripe.wire import decode_form

NO_REDIRECTS = {"enabled": True, "allow_redirects": "never"}
CONFIRMED: dict[str, Any] = {
    "amount": 1999,
    "currency": "usd",
    "confirm": True,
    "automatic_payment_methods": NO_REDIRECTS,
}
VISA = {**CONFIRMED, "payment_method": "pm_card_visa"}


def create(client: stripe.StripeClient, params: dict[str, Any], **options: Any) -> Any:
    return client.v1.payment_intents.create(params=params, options=options)  # type: ignore[arg-type]


def intent_status_of(error: stripe.StripeError) -> str:
    """The status of the PaymentIntent a Stripe error carries."""
    assert error.error is not None
    assert error.error.payment_intent is not None
    status: str = error.error.payment_intent.status
    return status


# --- charging ------------------------------------------------------------------------------------


def test_pm_card_visa_succeeds(client: stripe.StripeClient) -> None:
    intent = create(client, VISA)
    assert isinstance(intent, stripe.PaymentIntent)
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 1999, 1999)
    assert intent.currency == "usd"
    assert intent.id.startswith("pi_")


def test_tok_visa_as_payment_method_data_succeeds(client: stripe.StripeClient) -> None:
    params = {**CONFIRMED, "payment_method_data": {"type": "card", "card": {"token": "tok_visa"}}}
    intent = create(client, params)
    assert intent.status == "succeeded"
    assert intent.payment_method.startswith("pm_")


def test_payment_method_types_is_refused_from_api_version_2026_09_30(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    """The SDK sends its own API version, on which Stripe no longer takes this parameter."""
    params = {"amount": 1999, "currency": "usd", "payment_method_types": ["card"]}
    with pytest.raises(stripe.InvalidRequestError) as raised:
        create(client, params, idempotency_key="types")
    assert raised.value.code == "payment_method_types_no_longer_supported"
    assert fake_stripe.state.intents() == []
    older = stripe.StripeClient(
        "sk_test_fake",
        base_addresses={"api": fake_stripe.base_url},
        stripe_version="2025-03-31.basil",
        http_client=stripe.RequestsClient(timeout=5),
    )
    assert create(older, {**params, "confirm": True, "payment_method": "pm_card_visa"}).status == (
        "succeeded"
    )


def test_confirming_dashboard_methods_needs_a_return_url(client: stripe.StripeClient) -> None:
    params = {"amount": 1999, "currency": "usd", "confirm": True, "payment_method": "pm_card_visa"}
    with pytest.raises(stripe.InvalidRequestError, match="return_url"):
        create(client, params)


def test_unconfirmed_intent_waits_for_confirmation(client: stripe.StripeClient) -> None:
    intent = create(client, {**VISA, "confirm": False})
    assert intent.status == "requires_confirmation"
    assert intent.amount_received == 0


@pytest.mark.parametrize(
    "card",
    [
        {"payment_method": "pm_card_chargeDeclined"},
        {"payment_method": "pm_card_visa_chargeDeclined"},
        {"payment_method_data": {"type": "card", "card": {"token": "tok_chargeDeclined"}}},
    ],
)
def test_declined_cards_raise_card_error(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer, card: dict[str, Any]
) -> None:
    with pytest.raises(stripe.CardError) as raised:
        create(client, {**CONFIRMED, **card})
    error = raised.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.user_message == "Your card was declined."
    assert error.error is not None
    assert error.error.decline_code == "generic_decline"
    assert error.error.payment_intent is not None
    assert error.error.payment_intent.status == "requires_payment_method"
    [intent] = fake_stripe.state.intents()
    assert intent["status"] == "requires_payment_method"
    assert intent["amount_received"] == 0


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ({"payment_method": "pm_nope"}, "No such PaymentMethod: 'pm_nope'"),
        (
            {"payment_method_data": {"type": "card", "card": {"token": "tok_nope"}}},
            "No such token: 'tok_nope'",
        ),
    ],
)
def test_unknown_cards_are_invalid_requests(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer, card: dict[str, Any], message: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        create(client, {**CONFIRMED, **card})
    assert raised.value.user_message == message
    assert raised.value.http_status == 400
    assert fake_stripe.state.intents() == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**VISA, "amount": 49}, "Amount must be at least $0.50 usd"),
        ({"currency": "usd"}, "Missing required param: amount."),
        ({"amount": 1999}, "Missing required param: currency."),
    ],
)
def test_invalid_amounts_and_currencies(
    client: stripe.StripeClient, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        create(client, params)
    assert raised.value.user_message == message


def test_a_key_that_is_not_a_test_key_is_refused(fake_stripe: FakeStripeServer) -> None:
    live = stripe.StripeClient(
        "sk_live_nope",
        base_addresses={"api": fake_stripe.base_url},
        http_client=stripe.RequestsClient(timeout=5),
    )
    with pytest.raises(stripe.AuthenticationError):
        create(live, VISA)
    assert fake_stripe.state.intents() == []


# --- idempotency ---------------------------------------------------------------------------------


def test_same_key_and_params_replays_the_first_intent(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    key = str(uuid.uuid4())
    first = create(client, VISA, idempotency_key=key)
    second = create(client, VISA, idempotency_key=key)
    assert first.id == second.id
    assert len(fake_stripe.state.intents()) == 1
    assert len(client.v1.payment_intents.list().data) == 1


def test_same_key_with_other_params_is_an_idempotency_error(client: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())
    create(client, VISA, idempotency_key=key)
    with pytest.raises(stripe.IdempotencyError):
        create(client, {**VISA, "amount": 2000}, idempotency_key=key)


def test_a_decline_is_replayed_for_its_key(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    key = str(uuid.uuid4())
    declined = {**CONFIRMED, "payment_method": "pm_card_chargeDeclined"}
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            create(client, declined, idempotency_key=key)
    assert len(fake_stripe.state.intents()) == 1


def test_a_validation_failure_is_not_saved_for_its_key(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    key = str(uuid.uuid4())
    with pytest.raises(stripe.InvalidRequestError):
        create(client, {**VISA, "amount": 10}, idempotency_key=key)
    assert create(client, VISA, idempotency_key=key).status == "succeeded"


def test_different_keys_create_different_intents(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    create(client, VISA, idempotency_key="a")
    create(client, VISA, idempotency_key="b")
    assert len(fake_stripe.state.intents()) == 2


# --- confirming a PaymentIntent created without a card --------------------------------------------

UNCONFIRMED: dict[str, Any] = {
    "amount": 1999,
    "currency": "usd",
    "automatic_payment_methods": NO_REDIRECTS,
}
TOK_VISA = {"payment_method_data": {"type": "card", "card": {"token": "tok_visa"}}}


def confirm(client: stripe.StripeClient, intent_id: str, params: Any, **options: Any) -> Any:
    return client.v1.payment_intents.confirm(intent_id, params=params, options=options)


def test_created_without_a_card_it_waits_for_one(client: stripe.StripeClient) -> None:
    intent = create(client, UNCONFIRMED)
    assert intent.status == "requires_payment_method"
    assert intent.payment_method is None


@pytest.mark.parametrize("card", [{"payment_method": "pm_card_visa"}, TOK_VISA])
def test_confirming_with_a_card_charges_it(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer, card: dict[str, Any]
) -> None:
    intent = confirm(client, create(client, UNCONFIRMED).id, card)
    assert (intent.status, intent.amount_received) == ("succeeded", 1999)
    assert intent.payment_method.startswith("pm_")
    [charge] = fake_stripe.state.charges()
    assert (charge["id"], charge["status"], charge["amount"]) == (
        intent.latest_charge,
        "succeeded",
        1999,
    )


def test_a_bare_confirm_charges_the_card_given_at_creation(client: stripe.StripeClient) -> None:
    intent = create(client, {**UNCONFIRMED, "payment_method": "pm_card_visa"})
    assert intent.status == "requires_confirmation"
    assert confirm(client, intent.id, {}).status == "succeeded"


def test_confirming_without_any_card_is_refused(client: stripe.StripeClient) -> None:
    intent = create(client, UNCONFIRMED)
    with pytest.raises(stripe.InvalidRequestError, match="missing a payment method") as raised:
        confirm(client, intent.id, {})
    assert raised.value.code == "payment_intent_unexpected_state"


def test_a_decline_leaves_the_intent_open_for_another_card(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = create(client, UNCONFIRMED)
    with pytest.raises(stripe.CardError) as raised:
        confirm(client, intent.id, {"payment_method": "pm_card_chargeDeclined"})
    assert raised.value.http_status == 402
    assert raised.value.user_message == "Your card was declined."
    assert intent_status_of(raised.value) == "requires_payment_method"
    declined = client.v1.payment_intents.retrieve(intent.id)
    assert (declined.status, declined.amount_received) == ("requires_payment_method", 0)
    assert declined.last_payment_error is not None

    paid = confirm(client, intent.id, TOK_VISA)
    assert paid.status == "succeeded"
    assert paid.last_payment_error is None
    assert [c["status"] for c in fake_stripe.state.charges()] == ["failed", "succeeded"]
    assert len(fake_stripe.state.intents()) == 1


def test_a_succeeded_intent_cannot_be_confirmed_again(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = confirm(client, create(client, UNCONFIRMED).id, {"payment_method": "pm_card_visa"})
    with pytest.raises(stripe.InvalidRequestError, match="already succeeded") as raised:
        confirm(client, intent.id, {"payment_method": "pm_card_mastercard"})
    assert raised.value.http_status == 400
    assert raised.value.code == "payment_intent_unexpected_state"
    assert intent_status_of(raised.value) == "succeeded"
    assert len(fake_stripe.state.charges()) == 1  # no second charge


def test_confirming_an_unknown_intent_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="No such payment_intent") as raised:
        confirm(client, "pi_nope", {"payment_method": "pm_card_visa"})
    assert raised.value.http_status == 404


def test_confirming_dashboard_methods_needs_a_return_url_too(client: stripe.StripeClient) -> None:
    intent = create(client, {"amount": 1999, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError, match="return_url"):
        confirm(client, intent.id, {"payment_method": "pm_card_visa"})
    params = {"payment_method": "pm_card_visa", "return_url": "https://example.com/back"}
    assert confirm(client, intent.id, params).status == "succeeded"


def test_an_unknown_card_at_confirmation_is_an_invalid_request(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = create(client, UNCONFIRMED)
    with pytest.raises(stripe.InvalidRequestError, match="No such PaymentMethod"):
        confirm(client, intent.id, {"payment_method": "pm_nope"})
    assert fake_stripe.state.charges() == []


def test_a_confirmation_is_replayed_for_its_key(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = create(client, UNCONFIRMED)
    first = confirm(client, intent.id, {"payment_method": "pm_card_visa"}, idempotency_key="c")
    again = confirm(client, intent.id, {"payment_method": "pm_card_visa"}, idempotency_key="c")
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert (first.id, again.status) == (intent.id, "succeeded")
    assert len(fake_stripe.state.charges()) == 1
    with pytest.raises(stripe.IdempotencyError):
        confirm(client, intent.id, {"payment_method": "pm_card_mastercard"}, idempotency_key="c")


def test_a_key_is_bound_to_its_endpoint(client: stripe.StripeClient) -> None:
    intent = create(client, UNCONFIRMED, idempotency_key="k")
    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        confirm(client, intent.id, {"payment_method": "pm_card_visa"}, idempotency_key="k")


def test_a_replayed_creation_answers_as_it_first_did(client: stripe.StripeClient) -> None:
    """As on Stripe: the saved response, not the PaymentIntent as it is now."""
    intent = create(client, UNCONFIRMED, idempotency_key="order-1")
    confirm(client, intent.id, {"payment_method": "pm_card_visa"})
    again = create(client, UNCONFIRMED, idempotency_key="order-1")
    assert (again.id, again.status) == (intent.id, "requires_payment_method")
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


# --- manual capture: authorize, then capture or cancel --------------------------------------------

MANUAL: dict[str, Any] = {**UNCONFIRMED, "capture_method": "manual"}


def authorized(client: stripe.StripeClient, amount: int = 1999) -> Any:
    """A PaymentIntent whose card is authorized for `amount` and not captured."""
    return confirm(client, create(client, {**MANUAL, "amount": amount}).id, TOK_VISA)


def capture(client: stripe.StripeClient, intent_id: str, params: Any = None, **options: Any) -> Any:
    return client.v1.payment_intents.capture(intent_id, params=params, options=options)


def cancel(client: stripe.StripeClient, intent_id: str, params: Any = None, **options: Any) -> Any:
    return client.v1.payment_intents.cancel(intent_id, params=params, options=options)


def test_with_manual_capture_confirming_only_authorizes(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = authorized(client)
    assert intent.capture_method == "manual"
    assert (intent.status, intent.amount_capturable, intent.amount_received) == (
        "requires_capture",
        1999,
        0,
    )
    [charge] = fake_stripe.state.charges()
    assert (charge["status"], charge["captured"], charge["amount_captured"]) == (
        "succeeded",
        False,
        0,
    )
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_capturing_an_authorization_moves_the_money(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = authorized(client)
    captured = capture(client, intent.id)
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded",
        1999,
        0,
    )
    [charge] = fake_stripe.state.charges()
    assert (charge["captured"], charge["amount_captured"]) == (True, 1999)
    listed = client.v1.payment_intents.list(params={"limit": 100}).data
    assert [(i.id, i.status) for i in listed] == [(intent.id, "succeeded")]


def test_a_capture_is_replayed_for_its_key_and_refused_without_it(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = authorized(client)
    first = capture(client, intent.id, idempotency_key="capture-o1")
    again = capture(client, intent.id, idempotency_key="capture-o1")
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert (first.status, again.status, again.amount_received) == ("succeeded", "succeeded", 1999)
    with pytest.raises(stripe.InvalidRequestError, match="status of succeeded") as raised:
        capture(client, intent.id, idempotency_key="capture-other")
    assert raised.value.http_status == 400
    assert raised.value.code == "payment_intent_unexpected_state"
    assert intent_status_of(raised.value) == "succeeded"
    [charge] = fake_stripe.state.charges()
    assert charge["amount_captured"] == 1999  # captured once


def test_a_partial_capture_releases_the_rest(client: stripe.StripeClient) -> None:
    intent = authorized(client, 1000)
    with pytest.raises(stripe.InvalidRequestError, match="greater than the amount capturable"):
        capture(client, intent.id, {"amount_to_capture": 1001})
    captured = capture(client, intent.id, {"amount_to_capture": 600})
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded",
        600,
        0,
    )


@pytest.mark.parametrize("setup", ["unconfirmed", "declined", "automatic"])
def test_only_an_authorization_can_be_captured(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer, setup: str
) -> None:
    if setup == "automatic":
        intent = create(client, VISA)  # charged and captured at once
    else:
        intent = create(client, MANUAL)
        if setup == "declined":
            with pytest.raises(stripe.CardError):
                confirm(client, intent.id, {"payment_method": "pm_card_chargeDeclined"})
    status = client.v1.payment_intents.retrieve(intent.id).status
    with pytest.raises(stripe.InvalidRequestError, match=f"status of {status}") as raised:
        capture(client, intent.id)
    assert raised.value.code == "payment_intent_unexpected_state"
    assert all(not c["captured"] or setup == "automatic" for c in fake_stripe.state.charges())


def test_capturing_an_unknown_intent_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="No such payment_intent") as raised:
        capture(client, "pi_nope")
    assert raised.value.http_status == 404


def test_canceling_an_authorization_voids_it(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = authorized(client)
    canceled = cancel(client, intent.id, {"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    assert (canceled.amount_capturable, canceled.amount_received) == (0, 0)
    assert canceled.canceled_at is not None
    [charge] = fake_stripe.state.charges()
    # The hold is released: nothing captured, the authorized amount given back.
    assert (charge["captured"], charge["amount_captured"], charge["refunded"]) == (False, 0, True)
    # Canceled is final: it can be neither captured nor confirmed any more.
    with pytest.raises(stripe.InvalidRequestError, match="status of canceled"):
        capture(client, intent.id)
    with pytest.raises(stripe.InvalidRequestError, match="status of canceled"):
        confirm(client, intent.id, TOK_VISA)
    assert len(fake_stripe.state.charges()) == 1


@pytest.mark.parametrize("params", [MANUAL, {**MANUAL, "payment_method": "pm_card_visa"}])
def test_an_intent_never_confirmed_can_be_canceled(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer, params: dict[str, Any]
) -> None:
    intent = create(client, params)
    assert intent.status in ("requires_payment_method", "requires_confirmation")
    assert cancel(client, intent.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError, match="status of canceled"):
        confirm(client, intent.id, {})
    assert fake_stripe.state.charges() == []


def test_a_cancel_is_replayed_for_its_key_and_refused_again_without_it(
    client: stripe.StripeClient,
) -> None:
    intent = authorized(client)
    cancel(client, intent.id, idempotency_key="void-o1")
    again = cancel(client, intent.id, idempotency_key="void-o1")
    assert again.status == "canceled"
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.InvalidRequestError, match="status of canceled") as raised:
        cancel(client, intent.id, idempotency_key="void-other")
    assert raised.value.code == "payment_intent_unexpected_state"


def test_a_captured_intent_cannot_be_canceled(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = authorized(client)
    capture(client, intent.id)
    with pytest.raises(stripe.InvalidRequestError, match="status of succeeded") as raised:
        cancel(client, intent.id)
    assert raised.value.code == "payment_intent_unexpected_state"
    assert intent_status_of(raised.value) == "succeeded"
    [charge] = fake_stripe.state.charges()
    assert (charge["captured"], charge["refunded"]) == (True, False)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**MANUAL, "capture_method": "later"}, "Invalid capture_method"),
        ({"amount": 100, "currency": "usd", "capture_method": ""}, None),
    ],
)
def test_the_capture_method_is_checked(
    client: stripe.StripeClient, params: dict[str, Any], message: str | None
) -> None:
    if message is None:  # empty: Stripe's default, automatic
        assert create(client, params).capture_method == "automatic"
        return
    with pytest.raises(stripe.InvalidRequestError, match=message):
        create(client, params)


def test_an_unknown_cancellation_reason_is_refused(client: stripe.StripeClient) -> None:
    intent = authorized(client)
    with pytest.raises(stripe.InvalidRequestError, match="Invalid cancellation_reason"):
        cancel(client, intent.id, {"cancellation_reason": "because"})
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_only_captured_money_can_be_refunded(client: stripe.StripeClient) -> None:
    intent = authorized(client, 1500)
    with pytest.raises(stripe.InvalidRequestError, match="does not have a successful charge"):
        refund(client, {"payment_intent": intent.id})
    with pytest.raises(stripe.InvalidRequestError, match="has not been captured"):
        refund(client, {"charge": intent.latest_charge})
    capture(client, intent.id, {"amount_to_capture": 1000})
    assert refund(client, {"payment_intent": intent.id}).amount == 1000  # what was captured


# --- refunds -------------------------------------------------------------------------------------


def paid_intent(client: stripe.StripeClient, amount: int = 1999) -> Any:
    return create(client, {**VISA, "amount": amount})


def refund(client: stripe.StripeClient, params: Any, **options: Any) -> Any:
    return client.v1.refunds.create(params=params, options=options)


def test_a_refund_returns_the_whole_payment(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = paid_intent(client)
    done = refund(client, {"payment_intent": intent.id, "metadata": {"orderId": "o1"}})
    assert isinstance(done, stripe.Refund)
    assert done.id.startswith("re_")
    assert (done.amount, done.currency, done.status) == (1999, "usd", "succeeded")
    assert (done.payment_intent, done.charge) == (intent.id, intent.latest_charge)
    assert done.metadata.to_dict() == {"orderId": "o1"}
    [charge] = fake_stripe.state.charges()
    assert (charge["amount_refunded"], charge["refunded"]) == (1999, True)
    assert client.v1.refunds.retrieve(done.id).amount == 1999


def test_partial_refunds_up_to_the_amount_then_already_refunded(
    client: stripe.StripeClient,
) -> None:
    intent = paid_intent(client, 1000)
    assert refund(client, {"payment_intent": intent.id, "amount": 400}).amount == 400
    with pytest.raises(stripe.InvalidRequestError, match="greater than unrefunded") as raised:
        refund(client, {"payment_intent": intent.id, "amount": 700})
    assert raised.value.code == "amount_too_large"
    assert refund(client, {"charge": intent.latest_charge}).amount == 600  # what is left
    with pytest.raises(stripe.InvalidRequestError, match="already been refunded") as raised:
        refund(client, {"payment_intent": intent.id})
    assert raised.value.code == "charge_already_refunded"


def test_a_refund_is_replayed_for_its_key(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = paid_intent(client)
    first = refund(client, {"payment_intent": intent.id}, idempotency_key="refund-o1")
    again = refund(client, {"payment_intent": intent.id}, idempotency_key="refund-o1")
    assert again.id == first.id
    assert len(fake_stripe.state.refunds()) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"payment_intent": "pi_nope"}, "No such payment_intent: 'pi_nope'"),
        ({"charge": "ch_nope"}, "No such charge: 'ch_nope'"),
        ({}, "payment_intent or charge"),
    ],
)
def test_refunding_nothing_known_is_refused(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match=message):
        refund(client, params)
    assert fake_stripe.state.refunds() == []


def test_an_unpaid_intent_has_nothing_to_refund(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    intent = create(client, UNCONFIRMED)
    with pytest.raises(stripe.InvalidRequestError, match="does not have a successful charge"):
        refund(client, {"payment_intent": intent.id})
    with pytest.raises(stripe.CardError):
        confirm(client, intent.id, {"payment_method": "pm_card_chargeDeclined"})
    [declined] = fake_stripe.state.charges()
    with pytest.raises(stripe.InvalidRequestError, match="no successful payment"):
        refund(client, {"charge": declined["id"]})
    assert fake_stripe.state.refunds() == []


def test_refunds_are_listed_newest_first_per_intent(client: stripe.StripeClient) -> None:
    one, two = paid_intent(client), paid_intent(client)
    first = refund(client, {"payment_intent": one.id, "amount": 100})
    second = refund(client, {"payment_intent": one.id, "amount": 200})
    other = refund(client, {"payment_intent": two.id})
    assert [r.id for r in client.v1.refunds.list().data] == [other.id, second.id, first.id]
    listed = client.v1.refunds.list(params={"payment_intent": one.id}).data
    assert [r.id for r in listed] == [second.id, first.id]
    with pytest.raises(stripe.InvalidRequestError, match="No such refund") as raised:
        client.v1.refunds.retrieve("re_nope")
    assert raised.value.http_status == 404


# --- reading back --------------------------------------------------------------------------------


def test_retrieve_and_list(client: stripe.StripeClient) -> None:
    intent = create(client, VISA)
    again = client.v1.payment_intents.retrieve(intent.id)
    assert (again.amount, again.currency, again.status) == (1999, "usd", "succeeded")
    listed = client.v1.payment_intents.list().data
    assert [(i.id, i.amount, i.currency) for i in listed] == [(intent.id, 1999, "usd")]
    with pytest.raises(stripe.InvalidRequestError, match="No such payment_intent"):
        client.v1.payment_intents.retrieve("pi_nope")


def test_list_is_newest_first_and_paged(client: stripe.StripeClient) -> None:
    ids = [create(client, {**VISA, "amount": 100 + n}).id for n in range(3)]
    page = client.v1.payment_intents.list(params={"limit": 2})
    assert [i.id for i in page.data] == [ids[2], ids[1]]
    assert page.has_more
    rest = client.v1.payment_intents.list(params={"limit": 2, "starting_after": ids[1]})
    assert [i.id for i in rest.data] == [ids[0]]
    assert not rest.has_more


# --- failure injection ---------------------------------------------------------------------------


def inject(fake_stripe: FakeStripeServer, count: int, status: int = 500) -> None:
    res = httpx.post(f"{fake_stripe.base_url}/_fake/fail", json={"count": count, "status": status})
    assert res.status_code == 200


def test_a_transient_500_is_retried_by_the_sdk_without_a_duplicate(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    inject(fake_stripe, 2)  # the SDK makes 1 + max_network_retries (2) attempts
    assert create(client, VISA).status == "succeeded"
    assert len(fake_stripe.state.intents()) == 1
    assert fake_stripe.state.requests == 3


def test_a_persistent_500_reaches_the_caller_as_api_error(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    inject(fake_stripe, 3)
    with pytest.raises(stripe.APIError):
        create(client, VISA)
    assert fake_stripe.state.requests == 3
    assert fake_stripe.state.intents() == []
    assert create(client, VISA).status == "succeeded"  # the outage is over


def test_an_injected_429_is_a_rate_limit_error(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    inject(fake_stripe, 1, status=429)
    with pytest.raises(stripe.RateLimitError):
        create(client, VISA)


def test_after_commit_the_request_is_carried_out_and_only_its_answer_is_lost(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    fake_stripe.state.fail_next(3, after_commit=True)  # every attempt of the SDK loses its answer
    with pytest.raises(stripe.APIError):
        create(client, VISA, idempotency_key="lost")
    [intent] = fake_stripe.state.intents()  # created once: the SDK's retries were replays
    assert intent["status"] == "succeeded"
    assert len(fake_stripe.state.charges()) == 1
    assert fake_stripe.state.requests == 3
    assert create(client, VISA, idempotency_key="lost").id == intent["id"]


def test_one_lost_answer_is_hidden_by_the_sdks_retry(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    res = httpx.post(
        f"{fake_stripe.base_url}/_fake/fail", json={"count": 1, "status": 500, "after_commit": True}
    )
    assert res.status_code == 200
    intent = create(client, VISA)  # the SDK resends under its own idempotency key
    assert [pi["id"] for pi in fake_stripe.state.intents()] == [intent.id]
    assert fake_stripe.state.requests == 2


def test_failures_can_be_aimed_at_one_endpoint(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    once = stripe.StripeClient(
        "sk_test_fake",
        base_addresses={"api": fake_stripe.base_url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=5),
    )
    fake_stripe.state.fail_next(1, path="/confirm")
    intent = create(once, UNCONFIRMED)  # not a confirmation: served
    with pytest.raises(stripe.APIError):
        confirm(once, intent.id, {"payment_method": "pm_card_visa"})
    assert fake_stripe.state.charges() == []  # failed before doing anything
    assert confirm(client, intent.id, {"payment_method": "pm_card_visa"}).status == "succeeded"


def test_reset_forgets_everything(
    client: stripe.StripeClient, fake_stripe: FakeStripeServer
) -> None:
    refund(client, {"payment_intent": create(client, VISA, idempotency_key="k").id})
    inject(fake_stripe, 5)
    assert httpx.post(f"{fake_stripe.base_url}/_fake/reset").status_code == 200
    assert (
        fake_stripe.state.intents(),
        fake_stripe.state.charges(),
        fake_stripe.state.refunds(),
    ) == ([], [], [])
    assert fake_stripe.state.requests == 0
    assert create(client, {**VISA, "amount": 2000}, idempotency_key="k").amount == 2000


def test_a_fake_that_is_not_running_is_a_connection_error() -> None:
    stopped = FakeStripeServer()  # never started: nothing listens on its port
    client = stripe.StripeClient(
        "sk_test_fake",
        base_addresses={"api": stopped.base_url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=5),
    )
    with pytest.raises(stripe.APIConnectionError):
        create(client, VISA)


# --- encoding, binding, command line -------------------------------------------------------------


def test_decode_form_reads_stripes_bracketed_encoding() -> None:
    body = b"a=1&b[c]=2&d[0]=x&d[1]=y&e[f][g]=h&empty="
    assert decode_form(body) == {
        "a": "1",
        "b": {"c": "2"},
        "d": ["x", "y"],
        "e": {"f": {"g": "h"}},
        "empty": "",
    }


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_are_allowed(host: str) -> None:
    assert require_loopback(host) == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.com"])
def test_other_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback(host)
    with pytest.raises(ValueError, match="loopback"):
        FakeStripeServer(host=host)


def test_the_command_line_refuses_a_public_host() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--host", "0.0.0.0", "--port", "1"])
    assert exited.value.code == 2


def test_the_command_line_serves_the_fake() -> None:
    port = FakeStripeServer().port  # a free port
    proc = subprocess.Popen(
        [sys.executable, "-m", "ticketing_fakestripe", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = stripe.StripeClient(
            "sk_test_fake",
            base_addresses={"api": f"http://127.0.0.1:{port}"},
            http_client=stripe.RequestsClient(timeout=5),
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                assert create(client, VISA).status == "succeeded"
                break
            except stripe.APIConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
