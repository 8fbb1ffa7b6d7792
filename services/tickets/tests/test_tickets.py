"""The reference app's tickets tests (new, index, show, update, model), ported, plus ours."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.mongo import Database
from ticketing_common.outbox import Outbox
from ticketing_testing.apps import only_error, outbox_on, running
from ticketing_tickets import repository

SignIn = Callable[..., str]
CreateTicket = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[], Awaitable[None]]
RaceAfterFirstRead = Callable[[Callable[[str], Awaitable[Any]]], Any]

TITLE_ERROR = {"message": "Title is required", "field": "title"}
PRICE_ERROR = {"message": "Price must be greater than 0", "field": "price"}


async def reserve(outbox: Outbox, ticket_id: str, order_id: str = "") -> None:
    """Reserve a ticket as the order:created listener would."""
    ticket = await repository.get_ticket(outbox.db, ticket_id=ticket_id)
    assert ticket is not None
    assert await repository.reserve_ticket(outbox, ticket=ticket, order_id=order_id or "order-1")


# --- create -------------------------------------------------------------------------------------


async def test_post_has_a_route_handler(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/tickets", json={})
    assert res.status_code != 404


async def test_create_requires_a_signed_in_user(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/tickets", json={"title": "concert", "price": 20})
    assert res.status_code == 401
    assert res.json() == {"errors": [{"message": "Not authorized"}]}


async def test_create_checks_the_user_before_the_body(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/tickets", json={})
    assert res.status_code == 401


@pytest.mark.parametrize("title", [None, "", "   ", 12, ["concert"], "x" * 201])
async def test_create_rejects_an_invalid_title(
    client: httpx.AsyncClient, sign_in: SignIn, title: object
) -> None:
    sign_in()
    res = await client.post("/api/tickets", json={"title": title, "price": 10})
    assert res.status_code == 400
    assert only_error(res) == TITLE_ERROR


async def test_create_rejects_a_missing_title(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    sign_in()
    res = await client.post("/api/tickets", json={"price": 10})
    assert res.status_code == 400
    assert only_error(res) == TITLE_ERROR


@pytest.mark.parametrize(
    "price", [-10, 0, "0", 0.0, 10.001, "abc", "", True, False, [10], {"x": 1}, "NaN", "1e400"]
)
async def test_create_rejects_an_invalid_price(
    client: httpx.AsyncClient, sign_in: SignIn, price: object
) -> None:
    sign_in()
    res = await client.post("/api/tickets", json={"title": "concert", "price": price})
    assert res.status_code == 400
    assert only_error(res) == PRICE_ERROR


async def test_create_rejects_a_missing_price(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    sign_in()
    res = await client.post("/api/tickets", json={"title": "concert"})
    assert res.status_code == 400
    assert only_error(res) == PRICE_ERROR


async def test_create_reports_every_invalid_field(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    sign_in()
    res = await client.post("/api/tickets", json={})
    assert res.status_code == 400
    assert sorted(res.json()["errors"], key=lambda e: e["field"]) == [PRICE_ERROR, TITLE_ERROR]


async def test_create_rejects_a_body_that_is_not_json(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    sign_in()
    res = await client.post(
        "/api/tickets", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert res.status_code == 400
    assert list(res.json()) == ["errors"]


@pytest.mark.parametrize(
    ("price", "expected"), [(20, 20.0), ("19.99", 19.99), (0.01, 0.01), ("5.5", 5.5)]
)
async def test_create_accepts_amounts_with_up_to_two_decimals(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, price: object, expected: float
) -> None:
    sign_in()
    res = await client.post("/api/tickets", json={"title": "concert", "price": price})
    assert res.status_code == 201
    assert res.json()["price"] == expected
    stored = await db[repository.TICKETS].find_one({"_id": ObjectId(res.json()["id"])})
    assert stored["priceCents"] == round(expected * 100)
    assert isinstance(stored["priceCents"], int)


async def test_create_returns_201_and_saves_the_ticket(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database
) -> None:
    user_id = sign_in()
    assert await db[repository.TICKETS].count_documents({}) == 0
    res = await client.post("/api/tickets", json={"title": "  concert  ", "price": 19.99})
    assert res.status_code == 201
    body = res.json()
    assert body == {
        "id": body["id"],
        "title": "concert",
        "price": 19.99,
        "userId": user_id,
        "version": 0,
        "orderId": None,
    }
    docs = await db[repository.TICKETS].find({}).to_list()
    assert len(docs) == 1
    assert docs[0]["title"] == "concert"
    assert docs[0]["priceCents"] == 1999
    assert docs[0]["orderId"] is None


async def test_create_publishes_ticket_created(
    client: httpx.AsyncClient, create_ticket: CreateTicket, bus: InMemoryBus, settle: Settle
) -> None:
    ticket = await create_ticket(title="concert", price=19.99)
    user_id = ticket["userId"]
    await settle()
    events = bus.published_on(Subject.TICKET_CREATED)
    assert len(events) == 1
    data = events[0].data
    assert (data.id, data.version, data.title, data.price, data.user_id) == (
        ticket["id"],
        0,
        "concert",
        19.99,
        user_id,
    )


# --- show ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ticket_id", ["65f0a1b2c3d4e5f601234567", "abc", "0" * 25, "zzzzzzzzzzzzzzzzzzzzzzzz"]
)
async def test_show_returns_404_for_an_unknown_or_malformed_id(
    client: httpx.AsyncClient, ticket_id: str
) -> None:
    res = await client.get(f"/api/tickets/{ticket_id}")
    assert res.status_code == 404
    assert res.json() == {"errors": [{"message": "Not Found"}]}


async def test_show_returns_the_ticket(
    client: httpx.AsyncClient, create_ticket: CreateTicket
) -> None:
    ticket = await create_ticket(title="concert", price=20)
    client.cookies.clear()
    res = await client.get(f"/api/tickets/{ticket['id']}")
    assert res.status_code == 200
    assert res.json() == ticket


async def test_show_returns_a_reserved_ticket(
    client: httpx.AsyncClient, create_ticket: CreateTicket, db: Database, runtime: Any
) -> None:
    ticket = await create_ticket()
    await reserve(runtime.outbox, ticket["id"], "order-7")
    res = await client.get(f"/api/tickets/{ticket['id']}")
    assert res.status_code == 200
    assert res.json()["orderId"] == "order-7"
    assert res.json()["version"] == 1


# --- list ---------------------------------------------------------------------------------------


async def test_list_returns_unreserved_tickets_newest_first(
    client: httpx.AsyncClient, create_ticket: CreateTicket, db: Database, runtime: Any
) -> None:
    first = await create_ticket(title="first")
    second = await create_ticket(title="second")
    third = await create_ticket(title="third")
    await reserve(runtime.outbox, second["id"])
    client.cookies.clear()
    res = await client.get("/api/tickets")
    assert res.status_code == 200
    assert res.json() == [third, first]


async def test_tickets_stored_before_the_list_key_are_listed_after_a_start(
    app: Any, db: Database
) -> None:
    """A ticket written before `listKey` existed gets it when the service starts, and is
    listed in its place (by id) among the newer ones."""
    old = [ObjectId() for _ in range(3)]
    for i, oid in enumerate(old):
        doc = {"_id": oid, "title": f"old{i}", "priceCents": 100, "userId": "u", "version": 0}
        await db["tickets"].insert_one({**doc, "orderId": None, "releasedOrderIds": []})
    async with running(app) as client:
        new = await repository.create_ticket(
            app.state.runtime.outbox, title="new", price_cents=100, user_id="u"
        )
        titles = [t["title"] for t in (await client.get("/api/tickets")).json()]
        assert titles == ["new", "old2", "old1", "old0"]
        page = await client.get("/api/tickets", params={"before": str(new["_id"]), "limit": 2})
        assert [t["title"] for t in page.json()] == ["old2", "old1"]
    assert await db["tickets"].count_documents({"listKey": {"$exists": False}}) == 0


async def test_list_is_empty_without_tickets(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/tickets")
    assert res.status_code == 200
    assert res.json() == []


async def test_list_returns_50_by_default_and_honours_limit(
    client: httpx.AsyncClient,
    db: Database,
    runtime: Any,
) -> None:
    for i in range(55):
        await repository.create_ticket(runtime.outbox, title=f"t{i}", price_cents=100, user_id="u")
    res = await client.get("/api/tickets")
    assert len(res.json()) == 50
    assert res.json()[0]["title"] == "t54"
    res = await client.get("/api/tickets", params={"limit": 3})
    assert [t["title"] for t in res.json()] == ["t54", "t53", "t52"]
    res = await client.get("/api/tickets", params={"limit": 200})
    assert len(res.json()) == 55


async def test_list_pages_with_the_before_cursor(
    client: httpx.AsyncClient, db: Database, runtime: Any
) -> None:
    for i in range(7):
        await repository.create_ticket(runtime.outbox, title=f"t{i}", price_cents=100, user_id="u")
    pages: list[list[str]] = []
    params: dict[str, str | int] = {"limit": 3}
    while True:
        res = await client.get("/api/tickets", params=params)
        assert res.status_code == 200
        page = [t["title"] for t in res.json()]
        if not page:
            break
        pages.append(page)
        params = {"limit": 3, "before": res.json()[-1]["id"]}
    assert pages == [["t6", "t5", "t4"], ["t3", "t2", "t1"], ["t0"]]


async def test_list_cursor_skips_tickets_reserved_between_pages(
    client: httpx.AsyncClient,
    db: Database,
    runtime: Any,
) -> None:
    tickets = [
        await repository.create_ticket(runtime.outbox, title=f"t{i}", price_cents=1, user_id="u")
        for i in range(4)
    ]
    ids = [str(t["_id"]) for t in tickets]
    page = (await client.get("/api/tickets", params={"limit": 2})).json()
    await reserve(runtime.outbox, ids[1])
    # The cursor is an id, not an offset: a reservation does not shift what comes next.
    res = await client.get("/api/tickets", params={"limit": 2, "before": page[-1]["id"]})
    assert [t["title"] for t in res.json()] == ["t0"]


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "", "1.5", " 5", "99999"])
async def test_list_rejects_a_bad_limit(client: httpx.AsyncClient, limit: str) -> None:
    res = await client.get("/api/tickets", params={"limit": limit})
    assert res.status_code == 400
    assert only_error(res) == {
        "message": "Limit must be a whole number between 1 and 200",
        "field": "limit",
    }


@pytest.mark.parametrize("before", ["abc", "", "1234"])
async def test_list_rejects_a_bad_cursor(client: httpx.AsyncClient, before: str) -> None:
    res = await client.get("/api/tickets", params={"before": before})
    assert res.status_code == 400
    assert only_error(res) == {"message": "Cursor must be the id of a ticket", "field": "before"}


# --- update -------------------------------------------------------------------------------------


async def test_update_returns_404_for_an_unknown_or_malformed_id(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    sign_in()
    for ticket_id in (str(ObjectId()), "abc"):
        res = await client.put(f"/api/tickets/{ticket_id}", json={"title": "x", "price": 20})
        assert res.status_code == 404
        assert res.json() == {"errors": [{"message": "Not Found"}]}


async def test_update_requires_a_signed_in_user(
    client: httpx.AsyncClient, create_ticket: CreateTicket
) -> None:
    ticket = await create_ticket()
    client.cookies.clear()
    res = await client.put(f"/api/tickets/{ticket['id']}", json={"title": "x", "price": 20})
    assert res.status_code == 401
    assert res.json() == {"errors": [{"message": "Not authorized"}]}


async def test_update_by_someone_else_is_401_and_changes_nothing(
    client: httpx.AsyncClient, sign_in: SignIn, create_ticket: CreateTicket
) -> None:
    ticket = await create_ticket(title="concert", price=20)
    sign_in()
    res = await client.put(f"/api/tickets/{ticket['id']}", json={"title": "mine", "price": 1})
    assert res.status_code == 401
    assert only_error(res) == {"message": "Not authorized"}
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == ticket


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"title": "", "price": 20}, TITLE_ERROR),
        ({"price": 20}, TITLE_ERROR),
        ({"title": "x", "price": -10}, PRICE_ERROR),
        ({"title": "x", "price": 0}, PRICE_ERROR),
        ({"title": "x"}, PRICE_ERROR),
        ({"title": "x", "price": "abc"}, PRICE_ERROR),
    ],
)
async def test_update_rejects_an_invalid_title_or_price(
    client: httpx.AsyncClient,
    create_ticket: CreateTicket,
    body: dict[str, object],
    error: dict[str, str],
) -> None:
    ticket = await create_ticket()
    res = await client.put(f"/api/tickets/{ticket['id']}", json=body)
    assert res.status_code == 400
    assert only_error(res) == error


async def test_update_saves_the_edit_and_bumps_the_version(
    client: httpx.AsyncClient, create_ticket: CreateTicket
) -> None:
    ticket = await create_ticket(title="concert", price=20)
    user_id = ticket["userId"]
    res = await client.put(
        f"/api/tickets/{ticket['id']}", json={"title": "new title", "price": 100.5}
    )
    assert res.status_code == 200
    expected = {
        "id": ticket["id"],
        "title": "new title",
        "price": 100.5,
        "userId": user_id,
        "version": 1,
        "orderId": None,
    }
    assert res.json() == expected
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == expected
    res = await client.put(f"/api/tickets/{ticket['id']}", json={"title": "again", "price": 1})
    assert res.json()["version"] == 2


async def test_update_publishes_ticket_updated(
    client: httpx.AsyncClient, create_ticket: CreateTicket, bus: InMemoryBus, settle: Settle
) -> None:
    ticket = await create_ticket()
    user_id = ticket["userId"]
    await client.put(f"/api/tickets/{ticket['id']}", json={"title": "new title", "price": 19.99})
    await settle()
    events = bus.published_on(Subject.TICKET_UPDATED)
    assert len(events) == 1
    data = events[0].data
    assert (data.id, data.version, data.title, data.price, data.user_id, data.order_id) == (
        ticket["id"],
        1,
        "new title",
        19.99,
        user_id,
        None,
    )


async def test_update_of_a_reserved_ticket_is_rejected(
    client: httpx.AsyncClient,
    create_ticket: CreateTicket,
    db: Database,
    bus: InMemoryBus,
    settle: Settle,
    runtime: Any,
) -> None:
    ticket = await create_ticket(title="concert")
    await reserve(runtime.outbox, ticket["id"])
    await settle()
    before = len(bus.published_on(Subject.TICKET_UPDATED))
    res = await client.put(f"/api/tickets/{ticket['id']}", json={"title": "new", "price": 5})
    assert res.status_code == 400
    assert only_error(res) == {"message": "Cannot edit a reserved ticket"}
    after = (await client.get(f"/api/tickets/{ticket['id']}")).json()
    assert (after["title"], after["version"]) == ("concert", 1)
    await settle()
    assert len(bus.published_on(Subject.TICKET_UPDATED)) == before


async def test_update_of_someone_elses_reserved_ticket_is_401(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    create_ticket: CreateTicket,
    db: Database,
    runtime: Any,
) -> None:
    ticket = await create_ticket()
    await reserve(runtime.outbox, ticket["id"])
    sign_in()
    res = await client.put(f"/api/tickets/{ticket['id']}", json={"title": "new", "price": 5})
    assert res.status_code == 401


async def test_update_racing_another_edit_reapplies_on_the_fresh_version(
    client: httpx.AsyncClient,
    create_ticket: CreateTicket,
    db: Database,
    bus: InMemoryBus,
    settle: Settle,
    race_after_first_read: RaceAfterFirstRead,
    runtime: Any,
) -> None:
    ticket = await create_ticket(title="concert")

    async def another_edit(ticket_id: str) -> None:  # lands between our read and our write
        doc = await repository.get_ticket(db, ticket_id=ticket_id)
        assert doc is not None
        assert await repository.edit_ticket(
            runtime.outbox, ticket=doc, title="other", price_cents=700
        )

    raced = race_after_first_read(another_edit)
    res = await client.put(f"/api/tickets/{ticket['id']}", json={"title": "mine", "price": 5})
    assert raced
    assert res.status_code == 200
    assert (res.json()["title"], res.json()["price"], res.json()["version"]) == ("mine", 5, 2)
    await settle()
    updates = [e.data for e in bus.published_on(Subject.TICKET_UPDATED)]
    assert [(u.version, u.title) for u in updates] == [(1, "other"), (2, "mine")]


async def test_update_racing_a_reservation_is_rejected(
    client: httpx.AsyncClient,
    create_ticket: CreateTicket,
    db: Database,
    race_after_first_read: RaceAfterFirstRead,
    runtime: Any,
) -> None:
    ticket = await create_ticket(title="concert")

    async def a_reservation(ticket_id: str) -> None:
        doc = await repository.get_ticket(db, ticket_id=ticket_id)
        assert doc is not None
        assert await repository.reserve_ticket(runtime.outbox, ticket=doc, order_id="order-1")

    raced = race_after_first_read(a_reservation)
    res = await client.put(f"/api/tickets/{ticket['id']}", json={"title": "mine", "price": 5})
    assert raced
    assert res.status_code == 400
    assert only_error(res) == {"message": "Cannot edit a reserved ticket"}
    stored = await repository.get_ticket(db, ticket_id=ticket["id"])
    assert stored is not None
    assert (stored["title"], stored["version"], stored["orderId"]) == ("concert", 1, "order-1")


async def test_concurrent_updates_each_get_their_own_version(
    client: httpx.AsyncClient, create_ticket: CreateTicket, bus: InMemoryBus, settle: Settle
) -> None:
    ticket = await create_ticket()
    url = f"/api/tickets/{ticket['id']}"
    results = await asyncio.gather(
        *(client.put(url, json={"title": f"edit {i}", "price": i + 1}) for i in range(5))
    )
    assert all(r.status_code == 200 for r in results)
    assert sorted(r.json()["version"] for r in results) == [1, 2, 3, 4, 5]
    await settle()
    updates = [e.data for e in bus.published_on(Subject.TICKET_UPDATED)]
    assert sorted(u.version for u in updates) == [1, 2, 3, 4, 5]
    final = (await client.get(url)).json()
    last = max(updates, key=lambda u: u.version)
    assert (final["version"], final["title"]) == (last.version, last.title)


# --- model: optimistic concurrency --------------------------------------------------------------


async def test_a_stale_save_fails(db: Database) -> None:
    outbox = outbox_on(db, repository.TICKETS)
    created = await repository.create_ticket(outbox, title="concert", price_cents=500, user_id="u")
    ticket_id = str(created["_id"])
    first = await repository.get_ticket(db, ticket_id=ticket_id)
    second = await repository.get_ticket(db, ticket_id=ticket_id)
    assert first is not None
    assert second is not None

    assert await repository.edit_ticket(outbox, ticket=first, title="first", price_cents=10)
    assert (
        await repository.edit_ticket(outbox, ticket=second, title="second", price_cents=15) is None
    )
    stored = await repository.get_ticket(db, ticket_id=ticket_id)
    assert stored is not None
    assert (stored["title"], stored["priceCents"], stored["version"]) == ("first", 10, 1)


async def test_each_save_bumps_the_version_by_one(db: Database) -> None:
    outbox = outbox_on(db, repository.TICKETS)
    ticket = await repository.create_ticket(outbox, title="concert", price_cents=500, user_id="u")
    assert ticket["version"] == 0
    once = await repository.edit_ticket(outbox, ticket=ticket, title="a", price_cents=10)
    assert once is not None
    assert once["version"] == 1
    twice = await repository.edit_ticket(outbox, ticket=once, title="b", price_cents=20)
    assert twice is not None
    assert twice["version"] == 2


async def test_a_reservation_from_a_stale_read_fails(db: Database) -> None:
    outbox = outbox_on(db, repository.TICKETS)
    ticket = await repository.create_ticket(outbox, title="concert", price_cents=500, user_id="u")
    assert await repository.edit_ticket(outbox, ticket=ticket, title="a", price_cents=10)
    assert await repository.reserve_ticket(outbox, ticket=ticket, order_id="o1") is None


async def test_a_reservation_fails_once_a_cancelled_order_was_recorded(db: Database) -> None:
    outbox = outbox_on(db, repository.TICKETS)
    """Recording a cancellation bumps no version, yet a reservation read before it must fail."""
    ticket = await repository.create_ticket(outbox, title="concert", price_cents=500, user_id="u")
    hour = timedelta(hours=1)
    assert await repository.remember_released(db, ticket=ticket, order_id="o1", horizon=hour)
    assert await repository.reserve_ticket(outbox, ticket=ticket, order_id="o1") is None
