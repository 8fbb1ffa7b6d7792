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
from ticketing_fakestripe.app import decode_form
from ticketing_fakestripe.server import require_loopback

CONFIRMED: dict[str, Any] = {
    "amount": 1999,
    "currency": "usd",
    "confirm": True,
    "payment_method_types": ["card"],
}
VISA = {**CONFIRMED, "payment_method": "pm_card_visa"}


def create(client: stripe.StripeClient, params: dict[str, Any], **options: Any) -> Any:
    return client.v1.payment_intents.create(params=params, options=options)  # type: ignore[arg-type]


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


def test_automatic_payment_methods_without_redirects_succeed(client: stripe.StripeClient) -> None:
    params = {
        "amount": 1999,
        "currency": "usd",
        "confirm": True,
        "payment_method": "pm_card_visa",
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
    }
    assert create(client, params).status == "succeeded"


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
    client: stripe.StripeClient, fake: FakeStripeServer, card: dict[str, Any]
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
    [intent] = fake.state.intents()
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
    client: stripe.StripeClient, fake: FakeStripeServer, card: dict[str, Any], message: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        create(client, {**CONFIRMED, **card})
    assert raised.value.user_message == message
    assert raised.value.http_status == 400
    assert fake.state.intents() == []


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


def test_a_key_that_is_not_a_test_key_is_refused(fake: FakeStripeServer) -> None:
    live = stripe.StripeClient(
        "sk_live_nope",
        base_addresses={"api": fake.base_url},
        http_client=stripe.RequestsClient(timeout=5),
    )
    with pytest.raises(stripe.AuthenticationError):
        create(live, VISA)
    assert fake.state.intents() == []


# --- idempotency ---------------------------------------------------------------------------------


def test_same_key_and_params_replays_the_first_intent(
    client: stripe.StripeClient, fake: FakeStripeServer
) -> None:
    key = str(uuid.uuid4())
    first = create(client, VISA, idempotency_key=key)
    second = create(client, VISA, idempotency_key=key)
    assert first.id == second.id
    assert len(fake.state.intents()) == 1
    assert len(client.v1.payment_intents.list().data) == 1


def test_same_key_with_other_params_is_an_idempotency_error(client: stripe.StripeClient) -> None:
    key = str(uuid.uuid4())
    create(client, VISA, idempotency_key=key)
    with pytest.raises(stripe.IdempotencyError):
        create(client, {**VISA, "amount": 2000}, idempotency_key=key)


def test_a_decline_is_replayed_for_its_key(
    client: stripe.StripeClient, fake: FakeStripeServer
) -> None:
    key = str(uuid.uuid4())
    declined = {**CONFIRMED, "payment_method": "pm_card_chargeDeclined"}
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            create(client, declined, idempotency_key=key)
    assert len(fake.state.intents()) == 1


def test_a_validation_failure_is_not_saved_for_its_key(
    client: stripe.StripeClient, fake: FakeStripeServer
) -> None:
    key = str(uuid.uuid4())
    with pytest.raises(stripe.InvalidRequestError):
        create(client, {**VISA, "amount": 10}, idempotency_key=key)
    assert create(client, VISA, idempotency_key=key).status == "succeeded"


def test_different_keys_create_different_intents(
    client: stripe.StripeClient, fake: FakeStripeServer
) -> None:
    create(client, VISA, idempotency_key="a")
    create(client, VISA, idempotency_key="b")
    assert len(fake.state.intents()) == 2


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


def inject(fake: FakeStripeServer, count: int, status: int = 500) -> None:
    res = httpx.post(f"{fake.base_url}/_fake/fail", json={"count": count, "status": status})
    assert res.status_code == 200


def test_a_transient_500_is_retried_by_the_sdk_without_a_duplicate(
    client: stripe.StripeClient, fake: FakeStripeServer
) -> None:
    inject(fake, 2)  # the SDK makes 1 + max_network_retries (2) attempts
    assert create(client, VISA).status == "succeeded"
    assert len(fake.state.intents()) == 1
    assert fake.state.requests == 3


def test_a_persistent_500_reaches_the_caller_as_api_error(
    client: stripe.StripeClient, fake: FakeStripeServer
) -> None:
    inject(fake, 3)
    with pytest.raises(stripe.APIError):
        create(client, VISA)
    assert fake.state.requests == 3
    assert fake.state.intents() == []
    assert create(client, VISA).status == "succeeded"  # the outage is over


def test_an_injected_429_is_a_rate_limit_error(
    client: stripe.StripeClient, fake: FakeStripeServer
) -> None:
    inject(fake, 1, status=429)
    with pytest.raises(stripe.RateLimitError):
        create(client, VISA)


def test_reset_forgets_everything(client: stripe.StripeClient, fake: FakeStripeServer) -> None:
    create(client, VISA, idempotency_key="k")
    inject(fake, 5)
    assert httpx.post(f"{fake.base_url}/_fake/reset").status_code == 200
    assert fake.state.intents() == []
    assert fake.state.requests == 0
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
