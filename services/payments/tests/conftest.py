from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pydantic import SecretStr

from ticketing_common.bus.memory import InMemoryBus
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments.charges import StripeCharger
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings
from ticketing_testing.apps import TEST_JWT_KEY, app_fixture, session_cookie
from ticketing_testing.events import delivered, order_created

# The signed-in user of `client`, and the buyer of the orders `place_order` places.
BUYER = str(ObjectId())

PlaceOrder = Callable[..., Awaitable[str]]
Pay = Callable[..., Awaitable[httpx.Response]]


async def _pay(client: httpx.AsyncClient, order_id: str, token: str) -> httpx.Response:
    return await client.post("/api/payments", json={"token": token, "orderId": order_id})


@pytest.fixture
def settings(fake_stripe: FakeStripeServer) -> Settings:
    return Settings(
        environment="test",
        jwt_key=SecretStr(TEST_JWT_KEY),
        stripe_key=SecretStr("sk_test_local"),
        stripe_api_base=fake_stripe.base_url,
    )


@pytest.fixture
async def charger(settings: Settings) -> AsyncIterator[StripeCharger]:
    """The service's Stripe client, on the fake."""
    charger = StripeCharger(settings)
    yield charger
    await charger.close()


app = app_fixture(create_app)


@pytest.fixture
def client(client: httpx.AsyncClient, settings: Settings) -> httpx.AsyncClient:
    client.cookies.update(session_cookie(settings, user_id=BUYER))
    return client


@pytest.fixture
def place_order(client: httpx.AsyncClient, bus: InMemoryBus) -> PlaceOrder:
    """Publish an order:created (as the orders service would) and wait until it is replicated."""

    async def place(**fields: Any) -> str:
        event = order_created(**{"user_id": BUYER, **fields})
        await delivered(bus, event)
        return event.data.id

    return place


@pytest.fixture
def paid_order(client: httpx.AsyncClient, place_order: PlaceOrder) -> PlaceOrder:
    """`place_order`, and BUYER pays for it with a card Stripe authorizes: an order whose money
    is held, for orders' decision to settle; its id."""

    async def paid(**fields: Any) -> str:
        order_id = await place_order(**fields)
        res = await _pay(client, order_id, "tok_visa")
        assert res.status_code == 201, res.text
        return order_id

    return paid


@pytest.fixture
def pay_losing_the_answer(client: httpx.AsyncClient, fake_stripe: FakeStripeServer) -> Pay:
    """Pay as BUYER while Stripe authorizes the card but its answer, and those to the SDK's two
    retries, never arrive: the buyer is told to try again (a 502), the money is held."""

    async def pay(order_id: str, token: str = "tok_visa") -> httpx.Response:  # noqa: S107
        fake_stripe.state.fail_next(3, after_commit=True, path="/confirm")
        return await _pay(client, order_id, token)

    return pay
