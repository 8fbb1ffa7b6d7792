from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.service import Runtime
from ticketing_common.testing import eventually, running, session_cookie
from ticketing_tickets.main import create_app
from ticketing_tickets.repository import TICKETS
from ticketing_tickets.settings import Settings

SignIn = Callable[..., str]
CreateTicket = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[], Awaitable[None]]


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", jwt_key="test-jwt-key-0123456789abcdef0123456789")


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus("tickets")


@pytest.fixture
def db(mongo: Any, settings: Settings) -> Any:
    return mongo[settings.mongo_db]


@pytest.fixture
def app(settings: Settings, mongo: Any, bus: InMemoryBus) -> FastAPI:
    return create_app(settings, mongo=mongo, bus=bus)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as c:
        yield c


@pytest.fixture
def runtime(app: FastAPI, client: httpx.AsyncClient) -> Runtime:
    """The running app's runtime (the `client` fixture has started its lifespan)."""
    rt: Runtime = app.state.runtime
    return rt


@pytest.fixture
def sign_in(client: httpx.AsyncClient, settings: Settings) -> SignIn:
    """Make the client's next requests those of a user (a fresh one by default); its id."""

    def sign_in(user_id: str = "") -> str:
        user_id = user_id or str(ObjectId())
        client.cookies.clear()
        client.cookies.update(session_cookie(settings, user_id=user_id))
        return user_id

    return sign_in


@pytest.fixture
def create_ticket(client: httpx.AsyncClient) -> CreateTicket:
    """POST a ticket as the signed-in user (title "concert", price 20 unless given)."""

    async def create(**body: Any) -> dict[str, Any]:
        res = await client.post("/api/tickets", json={"title": "concert", "price": 20, **body})
        assert res.status_code == 201, res.text
        ticket: dict[str, Any] = res.json()
        return ticket

    return create


@pytest.fixture
def settle(bus: InMemoryBus, db: Any) -> Settle:
    """Wait until every event is consumed and every event the service wrote is published."""

    async def outbox_empty() -> bool:
        return bool(await db[TICKETS].count_documents({"_outboxPending": True}) == 0)

    async def settle() -> None:
        await bus.drain()
        await eventually(outbox_empty)

    return settle
