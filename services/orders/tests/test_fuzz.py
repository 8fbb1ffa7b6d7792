"""Any JSON at all, in every field of every body, and any query or id: never a 5xx, always the
error shape."""

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import TicketCreated, new_event
from ticketing_common.testing import assert_error_shape, hostile_bodies

UserHeaders = Callable[..., dict[str, str]]

# Every example runs against the one app of the test (its state accumulates, as in production).
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TICKET_ID = "65f0a1b2c3d4e5f6000000aa"
ORDER = {"ticketId": f'"{TICKET_ID}"'}


@pytest.fixture
def mongo(any_mongo: Any) -> Any:
    """Both Mongos: only the real driver encodes queries as BSON (where bad text used to fail)."""
    return any_mongo


@pytest.fixture
async def buyer(
    client: httpx.AsyncClient, bus: InMemoryBus, user_headers: UserHeaders
) -> dict[str, str]:
    """A signed-in buyer's headers; the ticket of ORDER is on sale."""
    data = TicketCreated(id=TICKET_ID, version=0, title="t", price=5, user_id=str(ObjectId()))
    await bus.publish(new_event(data))
    await bus.drain()
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
