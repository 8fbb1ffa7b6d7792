"""Any JSON at all, in every field of every body, and any query or id: never a 5xx, always the
error shape."""

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketing_testing.apps import assert_error_shape
from ticketing_testing.hostile import FUZZ, JSON, hostile_bodies
from ticketing_testing.mongo import EVERY_MONGO

SignIn = Callable[..., str]
CreateTicket = Callable[..., Awaitable[dict[str, Any]]]

TICKET = {"title": '"Jazz night"', "price": "19.99"}


# Both Mongos: only the real driver encodes queries as BSON (where bad text used to fail).
pytestmark = pytest.mark.parametrize("mongo", EVERY_MONGO, indirect=True)


@pytest.fixture
async def own_ticket(sign_in: SignIn, create_ticket: CreateTicket) -> str:
    """A ticket of the signed-in user."""
    sign_in()
    return str((await create_ticket())["id"])


@FUZZ
@given(body=hostile_bodies(TICKET))
async def test_create_survives_any_body(
    client: httpx.AsyncClient, own_ticket: str, body: bytes
) -> None:
    assert_error_shape(await client.post("/api/tickets", content=body, headers=JSON))


@FUZZ
@given(body=hostile_bodies(TICKET))
async def test_edit_survives_any_body(
    client: httpx.AsyncClient, own_ticket: str, body: bytes
) -> None:
    res = await client.put(f"/api/tickets/{own_ticket}", content=body, headers=JSON)
    assert_error_shape(res)


@FUZZ
@given(limit=st.none() | st.text(), before=st.none() | st.text())
async def test_listing_survives_any_query(
    client: httpx.AsyncClient, limit: str | None, before: str | None
) -> None:
    params = {k: v for k, v in {"limit": limit, "before": before}.items() if v is not None}
    assert_error_shape(await client.get("/api/tickets", params=params))


@FUZZ
@given(ticket_id=st.text(min_size=1))
async def test_show_and_edit_survive_any_id(
    client: httpx.AsyncClient, own_ticket: str, ticket_id: str
) -> None:
    path = f"/api/tickets/{quote(ticket_id, safe='')}"
    assert_error_shape(await client.get(path))
    assert_error_shape(await client.put(path, content=TICKET_BODY, headers=JSON))


TICKET_BODY = b'{"title": "Jazz night", "price": 19.99}'


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("POST", b'{"title": "Jazz\\ud800 night", "price": 5}'),
        ("PUT", b'{"title": "\\udfff", "price": 5}'),
        ("POST", b'{"title": "Jazz\\u0000night", "price": 5}'),
    ],
)
async def test_a_title_that_is_not_clean_text_is_a_400_on_title(
    client: httpx.AsyncClient, own_ticket: str, method: str, body: bytes
) -> None:
    path = "/api/tickets" if method == "POST" else f"/api/tickets/{own_ticket}"
    res = await client.request(method, path, content=body, headers=JSON)
    assert (res.status_code, res.json()) == (
        400,
        {"errors": [{"message": "Title is required", "field": "title"}]},
    )
