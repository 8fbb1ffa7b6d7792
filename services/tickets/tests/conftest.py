from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ticketing_common.bus.memory import InMemoryBus
from ticketing_testing.apps import app_fixture, settings_fixture
from ticketing_testing.waiting import eventually
from ticketing_tickets.main import create_app
from ticketing_tickets.repository import TICKETS
from ticketing_tickets.settings import Settings

CreateTicket = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[], Awaitable[None]]


settings = settings_fixture(Settings)
app = app_fixture(create_app)


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
