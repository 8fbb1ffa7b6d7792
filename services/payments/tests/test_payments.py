"""The reference app's payments tests, ported, plus ours on top. Stripe is the fake, over HTTP."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import OrderStatus, Subject
from ticketing_common.mongo import Database
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments import repository
from ticketing_payments.charges import StripeCharger
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings
from ticketing_testing.apps import only_error, running, session_cookie
from ticketing_testing.events import delivered, order_cancelled, order_created
from ticketing_testing.servers import free_port
from ticketing_testing.waiting import eventually

PlaceOrder = Callable[..., Awaitable[str]]
Pay = Callable[..., Awaitable[httpx.Response]]
UNAVAILABLE = {"message": "Payment provider unavailable, please try again"}


async def pay(client: httpx.AsyncClient, order_id: str, token: str = "tok_visa") -> httpx.Response:  # noqa: S107
    return await client.post("/api/payments", json={"token": token, "orderId": order_id})


def charges_of(fake: FakeStripeServer, order_id: str) -> list[dict[str, Any]]:
    """The PaymentIntents Stripe holds for one order (it carries the order id as metadata)."""
    return [pi for pi in fake.state.intents() if pi["metadata"].get("orderId") == order_id]


def card_charges(fake: FakeStripeServer, intent: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attempt to charge a card for one PaymentIntent, declined ones included."""
    return [c for c in fake.state.charges() if c["payment_intent"] == intent["id"]]


def authorized(fake: FakeStripeServer, order_id: str) -> list[dict[str, Any]]:
    """The order's PaymentIntents holding the card's money, not captured (that is orders' call)."""
    return [pi for pi in charges_of(fake, order_id) if pi["status"] == "requires_capture"]


async def payments_of(db: Database, order_id: str) -> list[dict[str, Any]]:
    return [p async for p in db["payments"].find({"orderId": order_id}).limit(10)]


async def authorized_once(fake: FakeStripeServer, db: Database, order_id: str) -> None:
    """One PaymentIntent for the order, holding the card's money, and one payment for it here:
    whatever was retried or raced, the card was not charged twice."""
    assert len(authorized(fake, order_id)) == 1
    assert len(charges_of(fake, order_id)) == 1
    assert len(await payments_of(db, order_id)) == 1


async def refused_before_stripe(
    client: httpx.AsyncClient, fake: FakeStripeServer, order_id: str, message: str
) -> None:
    """Paying for the order is a 400 saying `message`, decided before Stripe is asked anything."""
    res = await pay(client, order_id)
    assert res.status_code == 400
    assert only_error(res) == {"message": message}
    assert fake.state.requests == 0


# --- the reference app's tests -------------------------------------------------------------------


async def test_returns_404_when_purchasing_an_order_that_does_not_exist(
    client: httpx.AsyncClient,
) -> None:
    res = await pay(client, str(ObjectId()))
    assert res.status_code == 404
    assert only_error(res) == {"message": "Not Found"}


async def test_returns_401_when_purchasing_an_order_that_does_not_belong_to_the_user(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer
) -> None:
    order_id = await place_order(user_id=str(ObjectId()))
    res = await pay(client, order_id)
    assert res.status_code == 401
    assert fake_stripe.state.requests == 0


async def test_returns_400_when_purchasing_a_cancelled_order(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    bus: InMemoryBus,
    fake_stripe: FakeStripeServer,
) -> None:
    order_id = await place_order()
    await delivered(bus, order_cancelled(order_id))
    await refused_before_stripe(client, fake_stripe, order_id, "Cannot pay for a cancelled order")


async def test_returns_201_with_valid_inputs_and_authorizes_the_price_in_cents(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer, db: Database
) -> None:
    price = 37
    order_id = await place_order(price=price)
    res = await pay(client, order_id)
    assert res.status_code == 201
    assert set(res.json()) == {"id"}
    [charge] = charges_of(fake_stripe, order_id)
    assert charge["amount"] == price * 100
    assert charge["currency"] == "usd"
    # Authorized only: the money moves when orders completes the order (order:completed).
    assert (charge["capture_method"], charge["status"]) == ("manual", "requires_capture")
    assert (charge["amount_capturable"], charge["amount_received"]) == (price * 100, 0)
    [payment] = await payments_of(db, order_id)
    assert str(payment["_id"]) == res.json()["id"]
    assert payment["stripeId"] == charge["id"]
    assert (payment["status"], payment["capturedAt"], payment["voidedAt"]) == (
        "authorized",
        None,
        None,
    )


# --- validation and auth -------------------------------------------------------------------------


async def test_requires_a_signed_in_user(
    client: httpx.AsyncClient, place_order: PlaceOrder
) -> None:
    order_id = await place_order()
    client.cookies.clear()
    res = await pay(client, order_id)
    assert res.status_code == 401
    assert only_error(res) == {"message": "Not authorized"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"orderId": "abc"}, {"message": "Token must be provided", "field": "token"}),
        ({"token": "", "orderId": "abc"}, {"message": "Token must be provided", "field": "token"}),
        ({"token": 12, "orderId": "abc"}, {"message": "Token must be provided", "field": "token"}),
        ({"token": "tok_visa"}, {"message": "OrderId must be provided", "field": "orderId"}),
        (
            {"token": "tok_visa", "orderId": " "},
            {"message": "OrderId must be provided", "field": "orderId"},
        ),
        (
            {"token": "card_123", "orderId": "abc"},
            {
                "message": "Token must be a card token (tok_...) or a payment method (pm_...)",
                "field": "token",
            },
        ),
    ],
)
async def test_validates_the_body(
    client: httpx.AsyncClient, body: dict[str, Any], error: dict[str, str]
) -> None:
    res = await client.post("/api/payments", json=body)
    assert res.status_code == 400
    assert only_error(res) == error


async def test_an_empty_body_names_both_fields(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/payments", json={})
    assert res.status_code == 400
    assert {e["field"] for e in res.json()["errors"]} == {"token", "orderId"}


@pytest.mark.parametrize("order_id", ["not-an-id", "x" * 200, "{'$ne': 1}"])
async def test_a_malformed_order_id_is_404(client: httpx.AsyncClient, order_id: str) -> None:
    res = await pay(client, order_id)
    assert res.status_code == 404


# --- amounts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "cents"), [(19.99, 1999), (0.5, 50), (20.1, 2010), (1000000.0, 100000000)]
)
async def test_prices_with_cents_are_charged_as_exact_integer_cents(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    fake_stripe: FakeStripeServer,
    db: Database,
    price: float,
    cents: int,
) -> None:
    order_id = await place_order(price=price)
    res = await pay(client, order_id)
    assert res.status_code == 201
    [charge] = charges_of(fake_stripe, order_id)
    assert charge["amount"] == cents
    assert isinstance(charge["amount"], int)
    [payment] = await payments_of(db, order_id)
    assert (payment["amountCents"], payment["currency"]) == (cents, "usd")


async def test_a_price_below_stripes_minimum_is_refused_with_stripes_message(
    client: httpx.AsyncClient, place_order: PlaceOrder, db: Database
) -> None:
    order_id = await place_order(price=0.49)
    res = await pay(client, order_id)
    assert res.status_code == 400
    assert only_error(res) == {"message": "Amount must be at least $0.50 usd"}
    assert await payments_of(db, order_id) == []


# --- cards ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok_visa", "pm_card_visa"])
async def test_card_tokens_and_payment_methods_are_charged(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer, token: str
) -> None:
    order_id = await place_order()
    assert (await pay(client, order_id, token)).status_code == 201
    assert len(authorized(fake_stripe, order_id)) == 1


@pytest.mark.parametrize("token", ["tok_chargeDeclined", "pm_card_chargeDeclined"])
async def test_a_declined_card_is_400_with_stripes_reason_and_nothing_stored(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    fake_stripe: FakeStripeServer,
    bus: InMemoryBus,
    db: Database,
    token: str,
) -> None:
    order_id = await place_order()
    res = await pay(client, order_id, token)
    assert res.status_code == 400
    assert only_error(res) == {"message": "Your card was declined."}
    assert await payments_of(db, order_id) == []
    assert authorized(fake_stripe, order_id) == []
    assert bus.published_on(Subject.PAYMENT_CREATED) == []


async def test_after_a_decline_another_card_pays(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer, db: Database
) -> None:
    order_id = await place_order()
    assert (await pay(client, order_id, "tok_chargeDeclined")).status_code == 400
    assert (await pay(client, order_id, "tok_visa")).status_code == 201
    # One PaymentIntent for the order, confirmed twice: declined, then paid.
    [intent] = charges_of(fake_stripe, order_id)
    assert intent["status"] == "requires_capture"
    assert [c["status"] for c in card_charges(fake_stripe, intent)] == ["failed", "succeeded"]
    [payment] = await payments_of(db, order_id)
    assert payment["stripeId"] == intent["id"]


async def test_the_same_declined_card_again_replays_the_decline(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer
) -> None:
    order_id = await place_order()
    for _ in range(2):
        res = await pay(client, order_id, "tok_chargeDeclined")
        assert only_error(res) == {"message": "Your card was declined."}
    assert len(charges_of(fake_stripe, order_id)) == 1  # one attempt at Stripe, replayed


async def test_an_unknown_payment_method_is_400_with_stripes_message(
    client: httpx.AsyncClient, place_order: PlaceOrder
) -> None:
    order_id = await place_order()
    res = await pay(client, order_id, "pm_nope")
    assert res.status_code == 400
    assert only_error(res) == {"message": "No such PaymentMethod: 'pm_nope'"}


# --- Stripe failing ------------------------------------------------------------------------------


async def test_stripe_failing_longer_than_the_sdk_retries_is_502_then_a_retry_pays_once(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer, db: Database
) -> None:
    order_id = await place_order()
    fake_stripe.state.fail_next(3)  # one attempt + the SDK's two retries, all 500
    res = await pay(client, order_id)
    assert res.status_code == 502
    assert only_error(res) == UNAVAILABLE
    assert fake_stripe.state.requests == 3
    assert await payments_of(db, order_id) == []
    assert charges_of(fake_stripe, order_id) == []

    res = await pay(client, order_id)  # the buyer tries again: the lease was released
    assert res.status_code == 201
    await authorized_once(fake_stripe, db, order_id)


async def test_one_stripe_500_is_retried_by_the_sdk_and_charges_once(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer, db: Database
) -> None:
    order_id = await place_order()
    fake_stripe.state.fail_next(1)
    res = await pay(client, order_id)
    assert res.status_code == 201
    assert fake_stripe.state.requests == 3  # create (failed, then again), confirm
    await authorized_once(fake_stripe, db, order_id)


async def test_stripe_rate_limiting_is_502(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer, db: Database
) -> None:
    order_id = await place_order()
    fake_stripe.state.fail_next(1, status=429)
    res = await pay(client, order_id)
    assert res.status_code == 502
    assert only_error(res) == UNAVAILABLE
    assert await payments_of(db, order_id) == []


async def test_stripe_unreachable_is_502_and_nothing_stored(
    settings: Settings,
    mongo: Any,
    bus: InMemoryBus,
    db: Database,
) -> None:
    nowhere = settings.model_copy(update={"stripe_api_base": f"http://127.0.0.1:{free_port()}"})
    event = order_created(user_id="buyer")
    async with running(create_app(nowhere, mongo=mongo, bus=bus)) as client:
        client.cookies.update(session_cookie(settings, user_id="buyer"))
        await bus.publish(event)
        await bus.drain()
        res = await pay(client, event.data.id)
    assert res.status_code == 502
    assert only_error(res) == UNAVAILABLE
    assert await payments_of(db, event.data.id) == []


# --- unknown outcomes: one PaymentIntent per order, so never a second charge -------------------


def successful_charges(fake: FakeStripeServer) -> list[dict[str, Any]]:
    """Every card that said yes (an authorization), whether captured or not."""
    return [c for c in fake.state.charges() if c["status"] == "succeeded"]


async def test_stripe_authorized_but_the_answer_was_lost_then_a_new_token_pays_without_another(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    pay_losing_the_answer: Pay,
    fake_stripe: FakeStripeServer,
    bus: InMemoryBus,
    db: Database,
) -> None:
    order_id = await place_order(price=25)
    res = await pay_losing_the_answer(order_id, "tok_visa")
    assert res.status_code == 502
    assert only_error(res) == UNAVAILABLE
    assert await payments_of(db, order_id) == []
    [intent] = charges_of(fake_stripe, order_id)
    assert intent["status"] == "requires_capture"  # the money is held
    replica = await db["orders"].find_one({"_id": order_id})
    assert replica["paymentIntentId"] == intent["id"]

    # The buyer tries again; Stripe.js made a new single-use token.
    res = await pay(client, order_id, "tok_mastercard")
    assert res.status_code == 201
    assert [c["amount"] for c in successful_charges(fake_stripe)] == [2500]  # exactly one
    assert charges_of(fake_stripe, order_id) == [intent]
    [payment] = await payments_of(db, order_id)
    assert (str(payment["_id"]), payment["stripeId"]) == (res.json()["id"], intent["id"])

    async def published() -> bool:
        return len(bus.published_on(Subject.PAYMENT_CREATED)) == 1

    await eventually(published)


async def test_storing_the_payment_failed_after_authorizing_then_a_new_token_pays_once(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    fake_stripe: FakeStripeServer,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order_id = await place_order()
    store = repository.create_payment
    calls = 0

    async def fails_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise AutoReconnect("connection lost")
        return await store(*args, **kwargs)

    monkeypatch.setattr(repository, "create_payment", fails_once)
    res = await pay(client, order_id, "tok_visa")
    assert res.status_code >= 500  # a server fault, the database's (its exact status is not ours)
    assert await payments_of(db, order_id) == []
    assert len(successful_charges(fake_stripe)) == 1

    res = await pay(client, order_id, "pm_card_mastercard")
    assert res.status_code == 201
    assert len(successful_charges(fake_stripe)) == 1
    [intent] = charges_of(fake_stripe, order_id)
    [payment] = await payments_of(db, order_id)
    assert payment["stripeId"] == intent["id"]


async def test_a_cancellation_landing_during_the_authorization_voids_it(
    settings: Settings,
    mongo: Any,
    db: Database,
    fake_stripe: FakeStripeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The expiry fires while Stripe authorizes the card: the buyer is told, nothing is taken."""
    # Enough redeliveries for the cancellation to outwait the payment attempt's lease.
    bus = InMemoryBus("payments", max_deliver=20)
    order = order_created()
    order_id = order.data.id
    confirm = StripeCharger.confirm

    async def confirm_as_the_order_is_cancelled(self: StripeCharger, *a: Any, **kw: Any) -> None:
        await bus.publish(order_cancelled(order_id))

        async def cancelled() -> bool:
            replica = await db["orders"].find_one({"_id": order_id})
            return bool(replica["status"] == "cancelled")

        await eventually(cancelled)
        await confirm(self, *a, **kw)

    monkeypatch.setattr(StripeCharger, "confirm", confirm_as_the_order_is_cancelled)
    async with running(create_app(settings, mongo=mongo, bus=bus)) as client:
        client.cookies.update(session_cookie(settings, user_id=order.data.user_id))
        await bus.publish(order)
        await bus.drain()
        res = await pay(client, order_id)
        await bus.drain()
        assert await bus.dead_letters() == []
    assert res.status_code == 400
    assert only_error(res) == {
        "message": "Order was cancelled during payment; your card has not been charged"
    }
    [intent] = charges_of(fake_stripe, order_id)
    assert (intent["status"], intent["amount_received"]) == ("canceled", 0)
    assert fake_stripe.state.refunds() == []
    [payment] = await payments_of(db, order_id)
    assert payment["status"] == "voided"


async def test_an_order_can_be_paid_until_it_expires(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer
) -> None:
    """No margin before expiresAt: with short orders (ORDER_EXPIRATION_SECONDS=8) a margin
    made every order unpayable. A payment accepted late reaches orders within the expiry's
    grace, and if it does not, the order is cancelled and the authorization voided."""
    order_id = await place_order(expires_at=datetime.now(UTC) + timedelta(seconds=3))
    res = await pay(client, order_id)
    assert res.status_code == 201, res.text
    assert len(authorized(fake_stripe, order_id)) == 1


# --- orders that cannot be paid ------------------------------------------------------------------


async def test_paying_a_paid_order_again_is_400_and_authorizes_once(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer, db: Database
) -> None:
    order_id = await place_order()
    assert (await pay(client, order_id)).status_code == 201
    for token in ("tok_visa", "pm_card_visa"):
        res = await pay(client, order_id, token)
        assert res.status_code == 400
        assert only_error(res) == {"message": "Order has already been paid"}
    await authorized_once(fake_stripe, db, order_id)


async def test_paying_a_complete_order_is_400(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer
) -> None:
    order_id = await place_order(status=OrderStatus.COMPLETE)
    await refused_before_stripe(client, fake_stripe, order_id, "Order has already been paid")


async def test_paying_an_expired_order_is_400(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer
) -> None:
    order_id = await place_order(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await refused_before_stripe(client, fake_stripe, order_id, "Order has expired")


async def test_concurrent_payments_with_different_cards_authorize_once(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer, db: Database
) -> None:
    """A double click, even with another card: Stripe's idempotency alone would not stop it."""
    order_id = await place_order()
    results = await asyncio.gather(
        pay(client, order_id, "tok_visa"),
        pay(client, order_id, "pm_card_visa"),
        pay(client, order_id, "tok_mastercard"),
    )
    assert sorted(r.status_code for r in results) == [201, 400, 400]
    for res in results:
        if res.status_code == 400:
            assert only_error(res)["message"] in {
                "Payment already in progress",
                "Order has already been paid",
            }
    await authorized_once(fake_stripe, db, order_id)


async def test_a_second_attempt_while_the_first_is_charging_is_refused(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer
) -> None:
    order_id = await place_order()
    # The first attempt spends about a second in the SDK's back-off, holding the lease.
    fake_stripe.state.fail_next(2)
    first = asyncio.create_task(pay(client, order_id, "tok_visa"))
    await eventually(_requests_at_least(fake_stripe, 1))
    second = await pay(client, order_id, "pm_card_visa")
    assert second.status_code == 400
    assert only_error(second) == {"message": "Payment already in progress"}
    assert (await first).status_code == 201
    assert len(charges_of(fake_stripe, order_id)) == 1


def _requests_at_least(fake: FakeStripeServer, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return fake.state.requests >= n

    return check


# --- the event -----------------------------------------------------------------------------------


async def test_payment_created_is_published_through_the_outbox(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    fake_stripe: FakeStripeServer,
    bus: InMemoryBus,
    db: Database,
) -> None:
    order_id = await place_order(price=19.99)
    res = await pay(client, order_id)

    async def published() -> bool:
        return len(bus.published_on(Subject.PAYMENT_CREATED)) == 1

    await eventually(published)
    event = bus.published_on(Subject.PAYMENT_CREATED)[0]
    [charge] = charges_of(fake_stripe, order_id)
    assert event.data.id == res.json()["id"]
    assert event.data.order_id == order_id
    assert event.data.stripe_id == charge["id"]

    async def outbox_emptied() -> bool:
        [payment] = await payments_of(db, order_id)
        return payment["_outbox"] == [] and payment["_outboxPending"] is False

    await eventually(outbox_emptied)


async def test_the_app_pays_through_the_configured_api_base(
    client: httpx.AsyncClient, place_order: PlaceOrder, fake_stripe: FakeStripeServer
) -> None:
    """With STRIPE_API_BASE set, the payment lands on the fake (and only there, see
    test_charges)."""
    order_id = await place_order()
    assert (await pay(client, order_id)).status_code == 201
    assert fake_stripe.state.requests == 2  # the order's PaymentIntent, its confirmation
