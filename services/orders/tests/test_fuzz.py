"""Any JSON at all, in every field of every body, and any query or id: never a 5xx, always the
error shape."""

from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketing_common.bus.memory import InMemoryBus
from ticketing_testing.apps import assert_error_shape
from ticketing_testing.events import delivered, ticket_created
from ticketing_testing.hostile import FUZZ, hostile_bodies
from ticketing_testing.mongo import EVERY_MONGO

UserHeaders = Callable[..., dict[str, str]]

TICKET_ID = "65f0a1b2c3d4e5f6000000aa"
ORDER = {"ticketId": f'"{TICKET_ID}"'}


# Both Mongos: only the real driver encodes queries as BSON (where bad text used to fail).
pytestmark = pytest.mark.parametrize("mongo", EVERY_MONGO, indirect=True)


@pytest.fixture
async def buyer(
    client: httpx.AsyncClient, bus: InMemoryBus, user_headers: UserHeaders
) -> dict[str, str]:
    """A signed-in buyer's headers; the ticket of ORDER is on sale."""
    await delivered(bus, ticket_created(TICKET_ID, title="t", price=5))
    return {**user_headers(), "content-type": "application/json"}


@FUZZ
@given(body=hostile_bodies(ORDER))
async def test_ordering_survives_any_body(
    client: httpx.AsyncClient, buyer: dict[str, str], body: bytes
) -> None:
    assert_error_shape(await client.post("/api/orders", content=body, headers=buyer))


@FUZZ
@given(limit=st.none() | st.text(), before=st.none() | st.text())
async def test_listing_survives_any_query(
    client: httpx.AsyncClient, buyer: dict[str, str], limit: str | None, before: str | None
) -> None:
    params = {k: v for k, v in {"limit": limit, "before": before}.items() if v is not None}
    assert_error_shape(await client.get("/api/orders", params=params, headers=buyer))


@FUZZ
@given(order_id=st.text(min_size=1))
async def test_show_and_cancel_survive_any_id(
    client: httpx.AsyncClient, buyer: dict[str, str], order_id: str
) -> None:
    path = f"/api/orders/{quote(order_id, safe='')}"
    assert_error_shape(await client.get(path, headers=buyer))
    assert_error_shape(await client.delete(path, headers=buyer))


async def test_a_ticket_id_that_is_not_clean_text_is_a_400_on_ticket_id(
    client: httpx.AsyncClient, buyer: dict[str, str]
) -> None:
    for body in (b'{"ticketId": "\\ud800"}', f'{{"ticketId": "{TICKET_ID}\\udfff"}}'.encode()):
        res = await client.post("/api/orders", content=body, headers=buyer)
        assert (res.status_code, res.json()) == (
            400,
            {"errors": [{"message": "TicketId must be provided", "field": "ticketId"}]},
        )
