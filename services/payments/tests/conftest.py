from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pydantic import SecretStr

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import (
    Event,
    OrderCancelled,
    OrderCancelledTicketRef,
    OrderCompleted,
    OrderCompletedTicketRef,
    OrderCreated,
    OrderStatus,
    OrderTicketRef,
    new_event,
)
from ticketing_common.testing import running, session_cookie
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments.charges import StripeCharger
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings

BUYER = str(ObjectId())


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[FakeStripeServer]:
    """The fake Stripe on a free loopback port, once per session (reset before every test)."""
    with FakeStripeServer() as server:
        yield server


@pytest.fixture
def fake_stripe(stripe_server: FakeStripeServer) -> FakeStripeServer:
    stripe_server.state.reset()
    return stripe_server


@pytest.fixture
def settings(fake_stripe: FakeStripeServer) -> Settings:
    return Settings(
        environment="test",
        jwt_key=SecretStr("test-jwt-key-0123456789abcdef0123456789"),
        stripe_key=SecretStr("sk_test_local"),
        stripe_api_base=fake_stripe.base_url,
    )


@pytest.fixture
async def charger(settings: Settings) -> AsyncIterator[StripeCharger]:
    """The service's Stripe client, on the fake."""
    charger = StripeCharger(settings)
    yield charger
    await charger.close()


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus("payments")


@pytest.fixture
def db(mongo: Any, settings: Settings) -> Any:
    return mongo[settings.mongo_db]


@pytest.fixture
async def client(
    settings: Settings, mongo: Any, bus: InMemoryBus
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings, mongo=mongo, bus=bus)) as c:
        c.cookies.update(session_cookie(settings, user_id=BUYER))
        yield c


def order_created_event(
    *,
    order_id: str | None = None,
    user_id: str = BUYER,
    price: float = 20.0,
    status: OrderStatus = OrderStatus.CREATED,
    expires_at: datetime | None = None,
) -> Event[OrderCreated]:
    return new_event(
        OrderCreated(
            id=order_id or str(ObjectId()),
            version=0,
            status=status,
            user_id=user_id,
            expires_at=expires_at or datetime.now(UTC) + timedelta(minutes=15),
            ticket=OrderTicketRef(id=str(ObjectId()), price=price),
        )
    )


def order_cancelled_event(order_id: str, *, version: int = 1) -> Event[OrderCancelled]:
    return new_event(
        OrderCancelled(id=order_id, version=version, ticket=OrderCancelledTicketRef(id="t"))
    )


def order_completed_event(order_id: str, *, version: int = 1) -> Event[OrderCompleted]:
    return new_event(
        OrderCompleted(id=order_id, version=version, ticket=OrderCompletedTicketRef(id="t"))
    )


# Test modules cannot import this one (importlib mode): the builders travel as fixtures.
@pytest.fixture
def created_event() -> Callable[..., Event[OrderCreated]]:
    return order_created_event


@pytest.fixture
def cancelled_event() -> Callable[..., Event[OrderCancelled]]:
    return order_cancelled_event


@pytest.fixture
def completed_event() -> Callable[..., Event[OrderCompleted]]:
    return order_completed_event


@pytest.fixture
def place_order(client: httpx.AsyncClient, bus: InMemoryBus) -> Callable[..., Awaitable[str]]:
    """Publish an order:created (as the orders service would) and wait until it is replicated."""

    async def place(**fields: Any) -> str:
        event = order_created_event(**fields)
        await bus.publish(event)
        await bus.drain()
        return event.data.id

    return place
