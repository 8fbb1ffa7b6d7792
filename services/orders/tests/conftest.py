import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.mongo import Database
from ticketing_orders import repository, reservations
from ticketing_orders.errors import TicketReservedError
from ticketing_orders.main import create_app
from ticketing_orders.settings import Settings
from ticketing_testing.apps import app_fixture, outbox_on, settings_fixture
from ticketing_testing.events import on_sale
from ticketing_testing.plugin import UserHeaders

# Not the default (900), so the tests show the setting is honoured.
EXPIRATION_SECONDS = 120

TicketFactory = Callable[..., Awaitable[str]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
PostOrder = Callable[..., Awaitable[httpx.Response]]


settings = settings_fixture(Settings, order_expiration_seconds=EXPIRATION_SECONDS)
app = app_fixture(create_app)


@pytest.fixture
def ticket_on_sale(bus: InMemoryBus, client: httpx.AsyncClient) -> TicketFactory:
    """Publish ticket:created as the tickets service would, and wait until it is replicated."""
    return functools.partial(on_sale, bus)


@pytest.fixture
def post_order(
    client: httpx.AsyncClient, user_headers: UserHeaders, ticket_on_sale: TicketFactory
) -> PostOrder:
    """POST an order for `ticket_id` (a new ticket on sale unless given) as the user of
    `headers` (a new one unless given); the answer."""

    async def post(ticket_id: object = "", headers: dict[str, str] | None = None) -> httpx.Response:
        body = {"ticketId": ticket_id or await ticket_on_sale()}
        return await client.post("/api/orders", json=body, headers=headers or user_headers())

    return post


@pytest.fixture
def place_order(post_order: PostOrder) -> PlaceOrder:
    """`post_order`, which must create the order; the order."""

    async def place(ticket_id: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
        res = await post_order(ticket_id, headers)
        assert res.status_code == 201, res.text
        order: dict[str, Any] = res.json()
        return order

    return place


@pytest.fixture
def unconfirmed_holder() -> Callable[[Any, str], Awaitable[ObjectId]]:
    """Make an order that reserved the ticket and never confirmed (its buyer died): its id."""

    async def hold(db: Database, ticket_id: str) -> ObjectId:
        ghost = ObjectId()
        await db["orders"].insert_one(
            {
                "_id": ghost,
                "userId": "someone",
                "status": "created",
                "expiresAt": datetime.now(UTC) + timedelta(minutes=5),
                "version": 0,
                "ticketId": ticket_id,
                "confirmed": False,
                "_outbox": [],
                "_outboxPending": False,
            }
        )
        await db["tickets"].update_one({"_id": ticket_id}, {"$set": {"reservedBy": str(ghost)}})
        return ghost

    return hold


@pytest.fixture
def buy() -> Callable[..., Awaitable[str]]:
    """What one buyer's process does, without the app: order the ticket through
    `reservations` (its steps wait on `pause`, if given); the order's id, or "reserved"."""

    async def buy(db: Database, ticket_id: str, pause: reservations.Pause | None = None) -> str:
        try:
            order, _ = await reservations.create_order(
                outbox_on(db, repository.ORDERS),
                user_id=str(ObjectId()),
                ticket_id=ticket_id,
                expires_in=timedelta(minutes=5),
                **({"pause": pause} if pause else {}),
            )
        except TicketReservedError:
            return "reserved"
        return str(order["_id"])

    return buy
