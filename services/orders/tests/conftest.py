from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import TicketCreated, new_event
from ticketing_common.testing import running, session_cookie
from ticketing_orders.main import create_app
from ticketing_orders.settings import Settings

# Not the default (900), so the tests show the setting is honoured.
EXPIRATION_SECONDS = 120

UserHeaders = Callable[..., dict[str, str]]
TicketFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def settings() -> Settings:
    return Settings(
        environment="test",
        jwt_key="test-jwt-key-0123456789abcdef0123456789",
        order_expiration_seconds=EXPIRATION_SECONDS,
    )


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus("orders")


@pytest.fixture
def app(settings: Settings, mongo: object, bus: InMemoryBus) -> FastAPI:
    return create_app(settings, mongo=mongo, bus=bus)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as c:
        yield c


@pytest.fixture
def user_headers(settings: Settings) -> UserHeaders:
    """Headers of a signed-in user (a new one unless `user_id` is given).

    A Cookie header per request rather than the client's jar, so one client can act as many
    users at once.
    """

    def make(user_id: str | None = None) -> dict[str, str]:
        ((name, token),) = session_cookie(settings, user_id=user_id).items()
        return {"cookie": f"{name}={token}"}

    return make


@pytest.fixture
def ticket_on_sale(bus: InMemoryBus, client: httpx.AsyncClient) -> TicketFactory:
    """Publish ticket:created as the tickets service would, and wait until it is replicated."""

    async def make(title: str = "concert", price: float = 20.0) -> str:
        ticket_id = str(ObjectId())
        data = TicketCreated(
            id=ticket_id, version=0, title=title, price=price, user_id=str(ObjectId())
        )
        await bus.publish(new_event(data))
        await bus.drain()
        return ticket_id

    return make
