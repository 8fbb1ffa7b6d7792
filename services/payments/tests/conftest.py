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
def place_order(client: httpx.AsyncClient, bus: InMemoryBus) -> Callable[..., Awaitable[str]]:
    """Publish an order:created (as the orders service would) and wait until it is replicated."""

    async def place(**fields: Any) -> str:
        event = order_created(**{"user_id": BUYER, **fields})
        await delivered(bus, event)
        return event.data.id

    return place
