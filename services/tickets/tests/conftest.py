from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.mongo import Database
from ticketing_testing.apps import app_fixture, settings_fixture
from ticketing_testing.waiting import eventually
from ticketing_tickets import repository
from ticketing_tickets.main import create_app
from ticketing_tickets.repository import TICKETS
from ticketing_tickets.settings import Settings

CreateTicket = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[], Awaitable[None]]


settings = settings_fixture(Settings)
app = app_fixture(create_app)


@pytest.fixture
def create_ticket(
    client: httpx.AsyncClient, settings: Settings, sign_in: Callable[..., str]
) -> CreateTicket:
    """POST a ticket as the signed-in user, a new one if nobody is (title "concert", price 20
    unless given)."""

    async def create(**body: Any) -> dict[str, Any]:
        if settings.cookie_name not in client.cookies:
            sign_in()
        res = await client.post("/api/tickets", json={"title": "concert", "price": 20, **body})
        assert res.status_code == 201, res.text
        ticket: dict[str, Any] = res.json()
        return ticket

    return create


@pytest.fixture
def settle(bus: InMemoryBus, db: Database) -> Settle:
    """Wait until every event is consumed and every event the service wrote is published."""

    async def outbox_empty() -> bool:
        return bool(await db[TICKETS].count_documents({"_outboxPending": True}) == 0)

    async def settle() -> None:
        await bus.drain()
        await eventually(outbox_empty)

    return settle


class Race:
    """Truthy once the competing change has run."""

    def __init__(self) -> None:
        self.ran = False

    def __bool__(self) -> bool:
        return self.ran


@pytest.fixture
def race_after_first_read(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Callable[[str], Awaitable[Any]]], Race]:
    """Run `compete(ticket_id)` right after the first read of the ticket, once: the code that
    read it then writes on a stale read and must lose cleanly."""

    def race_after_first_read(compete: Callable[[str], Awaitable[Any]]) -> Race:
        real_get = repository.get_ticket
        race = Race()

        async def get_then_compete(db: Database, *, ticket_id: str) -> Any:
            doc = await real_get(db, ticket_id=ticket_id)
            if not race.ran:
                race.ran = True
                await compete(ticket_id)
            return doc

        monkeypatch.setattr(repository, "get_ticket", get_then_compete)
        return race

    return race_after_first_read
