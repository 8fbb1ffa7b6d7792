"""The reference app's orders route tests, ported, plus ours on top."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.mongo import Database
from ticketing_orders.settings import Settings
from ticketing_testing.apps import TEST_JWT_KEY, only_error
from ticketing_testing.events import delivered, payment_created
from ticketing_testing.waiting import eventually, published

UserHeaders = Callable[..., dict[str, str]]
TicketFactory = Callable[..., Awaitable[str]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
PostOrder = Callable[..., Awaitable[httpx.Response]]


async def pay(bus: InMemoryBus, order_id: str) -> None:
    await delivered(bus, payment_created(order_id, payment_id="pay-1", stripe_id="ch_1"))


# --- create -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ticket_id", ["65f0a1b2c3d4e5f601234567", "not-an-id", "x" * 200])
async def test_create_returns_404_for_an_unknown_ticket(
    post_order: PostOrder, ticket_id: str, db: Database
) -> None:
    res = await post_order(ticket_id)
    assert res.status_code == 404
    assert only_error(res) == {"message": "Not Found"}
    # The order inserted before the reservation found no ticket is gone again.
    assert await db["orders"].count_documents({}) == 0


@pytest.mark.parametrize("body", [{}, {"ticketId": ""}, {"ticketId": "  "}, {"ticketId": 12}])
async def test_create_requires_a_ticket_id(
    client: httpx.AsyncClient, user_headers: UserHeaders, body: dict[str, object]
) -> None:
    res = await client.post("/api/orders", json=body, headers=user_headers())
    assert res.status_code == 400
    assert only_error(res) == {"message": "TicketId must be provided", "field": "ticketId"}


async def test_create_requires_sign_in(
    client: httpx.AsyncClient, ticket_on_sale: TicketFactory
) -> None:
    ticket_id = await ticket_on_sale()
    res = await client.post("/api/orders", json={"ticketId": ticket_id})
    assert res.status_code == 401
    assert only_error(res) == {"message": "Not authorized"}


async def test_create_returns_400_if_the_ticket_is_already_reserved(
    post_order: PostOrder, user_headers: UserHeaders, ticket_on_sale: TicketFactory
) -> None:
    ticket_id = await ticket_on_sale()
    assert (await post_order(ticket_id)).status_code == 201
    for headers in (user_headers(), user_headers()):
        res = await post_order(ticket_id, headers)
        assert res.status_code == 400
        assert only_error(res) == {"message": "Ticket is already reserved"}


async def test_concurrent_buyers_of_one_ticket_exactly_one_wins(
    post_order: PostOrder, ticket_on_sale: TicketFactory
) -> None:
    ticket_id = await ticket_on_sale()
    results = await asyncio.gather(*(post_order(ticket_id) for _ in range(20)))
    assert sorted(r.status_code for r in results) == [201] + [400] * 19


async def test_create_reserves_the_ticket_and_publishes_order_created(
    post_order: PostOrder,
    user_headers: UserHeaders,
    ticket_on_sale: TicketFactory,
    bus: InMemoryBus,
    settings: Settings,
) -> None:
    ticket_id = await ticket_on_sale(title="Opera", price=19.99)
    user_id = str(ObjectId())
    before = datetime.now(UTC)
    res = await post_order(ticket_id, user_headers(user_id))
    after = datetime.now(UTC)

    assert res.status_code == 201
    body = res.json()
    assert set(body) == {"id", "userId", "status", "expiresAt", "version", "ticket"}
    assert body["userId"] == user_id
    assert body["status"] == "created"
    assert body["version"] == 0
    assert body["ticket"] == {"id": ticket_id, "title": "Opera", "price": 19.99, "version": 0}
    assert body["expiresAt"].endswith(("Z", "+00:00"))
    expires_at = datetime.fromisoformat(body["expiresAt"])
    hold = timedelta(seconds=settings.order_expiration_seconds)
    assert before + hold <= expires_at <= after + hold

    (event,) = await published(bus, Subject.ORDER_CREATED, 1)
    assert event.data.id == body["id"]
    assert event.data.version == 0
    assert event.data.status == "created"
    assert event.data.user_id == user_id
    assert event.data.expires_at == expires_at
    assert event.data.ticket.id == ticket_id
    assert event.data.ticket.price == 19.99
    encoded = event.model_dump(mode="json", by_alias=True)["data"]
    assert set(encoded) == {"id", "version", "status", "userId", "expiresAt", "ticket"}


async def test_created_orders_leave_no_outbox_behind(
    post_order: PostOrder, bus: InMemoryBus, mongo: Any, settings: Settings
) -> None:
    res = await post_order()
    await published(bus, Subject.ORDER_CREATED, 1)

    async def flushed() -> bool:
        doc = await mongo[settings.mongo_db]["orders"].find_one({"_id": ObjectId(res.json()["id"])})
        return doc["_outbox"] == [] and doc["_outboxPending"] is False

    await eventually(flushed)


# --- list ---------------------------------------------------------------------------------------


async def test_list_returns_only_the_callers_orders_newest_first(
    place_order: PlaceOrder,
    post_order: PostOrder,
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
    ticket_on_sale: TicketFactory,
) -> None:
    one, two = user_headers(), user_headers()
    t1 = await ticket_on_sale(title="first")
    t2 = await ticket_on_sale(title="second")
    t3 = await ticket_on_sale(title="third")
    assert (await post_order(t1, one)).status_code == 201
    o2 = await place_order(t2, two)
    o3 = await place_order(t3, two)

    res = await client.get("/api/orders", headers=two)
    assert res.status_code == 200
    assert res.json() == [o3, o2]
    assert [o["ticket"]["title"] for o in res.json()] == ["third", "second"]

    mine = (await client.get("/api/orders", headers=one)).json()
    assert [o["ticket"]["id"] for o in mine] == [t1]
    assert (await client.get("/api/orders", headers=user_headers())).json() == []


async def test_list_pages_with_limit_and_before(
    place_order: PlaceOrder, client: httpx.AsyncClient, user_headers: UserHeaders
) -> None:
    me = user_headers()
    ids = [(await place_order(headers=me))["id"] for _ in range(3)]
    page = (await client.get("/api/orders?limit=2", headers=me)).json()
    assert [o["id"] for o in page] == [ids[2], ids[1]]
    rest = (await client.get(f"/api/orders?limit=2&before={ids[1]}", headers=me)).json()
    assert [o["id"] for o in rest] == [ids[0]]


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "before=nope"])
async def test_list_rejects_a_bad_limit_or_cursor(
    client: httpx.AsyncClient, user_headers: UserHeaders, query: str
) -> None:
    res = await client.get(f"/api/orders?{query}", headers=user_headers())
    assert res.status_code == 400
    field = query.split("=")[0]
    assert only_error(res) == {
        "field": field,
        "message": "Limit must be a whole number between 1 and 200"
        if field == "limit"
        else "Cursor must be the id of an order",
    }


async def test_list_requires_sign_in(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/orders")).status_code == 401


# --- show ---------------------------------------------------------------------------------------


async def test_show_returns_the_callers_order(
    place_order: PlaceOrder, client: httpx.AsyncClient, user_headers: UserHeaders
) -> None:
    me = user_headers()
    created = await place_order(headers=me)
    res = await client.get(f"/api/orders/{created['id']}", headers=me)
    assert res.status_code == 200
    assert res.json() == created


async def test_show_returns_401_for_another_users_order(
    place_order: PlaceOrder, client: httpx.AsyncClient, user_headers: UserHeaders
) -> None:
    created = await place_order()
    res = await client.get(f"/api/orders/{created['id']}", headers=user_headers())
    assert res.status_code == 401
    assert only_error(res) == {"message": "Not authorized"}


@pytest.mark.parametrize("order_id", ["65f0a1b2c3d4e5f601234567", "not-an-id", "%20"])
async def test_show_returns_404_for_an_unknown_or_malformed_id(
    client: httpx.AsyncClient, user_headers: UserHeaders, order_id: str
) -> None:
    res = await client.get(f"/api/orders/{order_id}", headers=user_headers())
    assert res.status_code == 404
    assert only_error(res) == {"message": "Not Found"}


async def test_show_requires_sign_in(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/api/orders/{ObjectId()}")).status_code == 401


# --- cancel -------------------------------------------------------------------------------------


async def test_cancel_marks_the_order_cancelled_publishes_and_frees_the_ticket(
    place_order: PlaceOrder,
    post_order: PostOrder,
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
    bus: InMemoryBus,
) -> None:
    me = user_headers()
    created = await place_order(headers=me)
    ticket_id = created["ticket"]["id"]

    res = await client.delete(f"/api/orders/{created['id']}", headers=me)
    assert res.status_code == 204
    assert res.content == b""

    shown = (await client.get(f"/api/orders/{created['id']}", headers=me)).json()
    assert shown["status"] == "cancelled"
    assert shown["version"] == 1

    (event,) = await published(bus, Subject.ORDER_CANCELLED, 1)
    assert event.data.id == created["id"]
    assert event.data.version == 1
    assert event.data.ticket.id == ticket_id
    assert set(event.model_dump(mode="json", by_alias=True)["data"]) == {"id", "version", "ticket"}

    assert (await post_order(ticket_id)).status_code == 201


async def test_cancelling_twice_is_204_and_publishes_once(
    place_order: PlaceOrder, client: httpx.AsyncClient, user_headers: UserHeaders, bus: InMemoryBus
) -> None:
    me = user_headers()
    created = await place_order(headers=me)
    for _ in range(2):
        assert (await client.delete(f"/api/orders/{created['id']}", headers=me)).status_code == 204
    await published(bus, Subject.ORDER_CANCELLED, 1)
    shown = (await client.get(f"/api/orders/{created['id']}", headers=me)).json()
    assert shown["version"] == 1


async def test_cancelling_a_new_order_does_not_release_the_ticket_held_by_the_next_buyer(
    place_order: PlaceOrder,
    post_order: PostOrder,
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
) -> None:
    first, second = user_headers(), user_headers()
    old = await place_order(headers=first)
    ticket_id = old["ticket"]["id"]
    await client.delete(f"/api/orders/{old['id']}", headers=first)
    assert (await post_order(ticket_id, second)).status_code == 201
    # Cancelling the old order again must not free the ticket now held by the second order.
    assert (await client.delete(f"/api/orders/{old['id']}", headers=first)).status_code == 204
    res = await post_order(ticket_id)
    assert only_error(res) == {"message": "Ticket is already reserved"}


async def test_cancel_of_a_complete_order_is_400(
    place_order: PlaceOrder, client: httpx.AsyncClient, user_headers: UserHeaders, bus: InMemoryBus
) -> None:
    me = user_headers()
    created = await place_order(headers=me)
    await pay(bus, created["id"])
    res = await client.delete(f"/api/orders/{created['id']}", headers=me)
    assert res.status_code == 400
    assert only_error(res) == {"message": "Cannot cancel a completed order"}
    shown = (await client.get(f"/api/orders/{created['id']}", headers=me)).json()
    assert shown["status"] == "complete"
    await published(bus, Subject.ORDER_CANCELLED, 0)


async def test_cancel_returns_401_for_another_users_order(
    place_order: PlaceOrder, client: httpx.AsyncClient, user_headers: UserHeaders, bus: InMemoryBus
) -> None:
    me = user_headers()
    created = await place_order(headers=me)
    res = await client.delete(f"/api/orders/{created['id']}", headers=user_headers())
    assert res.status_code == 401
    shown = (await client.get(f"/api/orders/{created['id']}", headers=me)).json()
    assert shown["status"] == "created"
    await published(bus, Subject.ORDER_CANCELLED, 0)


@pytest.mark.parametrize("order_id", ["65f0a1b2c3d4e5f601234567", "not-an-id"])
async def test_cancel_returns_404_for_an_unknown_or_malformed_id(
    client: httpx.AsyncClient, user_headers: UserHeaders, order_id: str
) -> None:
    res = await client.delete(f"/api/orders/{order_id}", headers=user_headers())
    assert res.status_code == 404


async def test_cancel_requires_sign_in(client: httpx.AsyncClient) -> None:
    assert (await client.delete(f"/api/orders/{ObjectId()}")).status_code == 401


def test_orders_hold_a_ticket_for_15_minutes_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDER_EXPIRATION_SECONDS", raising=False)
    assert Settings(environment="development").order_expiration_seconds == 15 * 60
    monkeypatch.setenv("ORDER_EXPIRATION_SECONDS", "10")
    assert Settings(environment="development").order_expiration_seconds == 10


async def test_max_open_orders_per_user_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its default is SPEC's 10 (test_open_orders holds the cap itself)."""
    assert Settings(environment="test", jwt_key=TEST_JWT_KEY).max_open_orders_per_user == 10
    monkeypatch.setenv("MAX_OPEN_ORDERS_PER_USER", "3")
    assert Settings(environment="test", jwt_key=TEST_JWT_KEY).max_open_orders_per_user == 3
