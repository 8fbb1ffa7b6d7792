"""Any JSON at all, in every field of the body: never a 5xx, always the error shape."""

from collections.abc import Awaitable, Callable

import httpx
import pytest
from hypothesis import given

from ticketing_testing.apps import assert_error_shape
from ticketing_testing.hostile import FUZZ, JSON, hostile_bodies
from ticketing_testing.mongo import EVERY_MONGO

ORDER_ID = "65f0a1b2c3d4e5f6000000bb"
PAYMENT = {"orderId": f'"{ORDER_ID}"', "token": '"tok_visa"'}


# Both Mongos: only the real driver encodes queries as BSON (where bad text used to fail).
pytestmark = pytest.mark.parametrize("mongo", EVERY_MONGO, indirect=True)


@pytest.fixture
async def open_order(place_order: Callable[..., Awaitable[str]]) -> str:
    """The signed-in buyer's open order, the one PAYMENT pays."""
    return await place_order(order_id=ORDER_ID)


@FUZZ
@given(body=hostile_bodies(PAYMENT))
async def test_paying_survives_any_body(
    client: httpx.AsyncClient, open_order: str, body: bytes
) -> None:
    assert_error_shape(await client.post("/api/payments", content=body, headers=JSON))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f'{{"orderId": "{ORDER_ID}\\ud800", "token": "tok_visa"}}', "orderId"),
        (f'{{"orderId": "{ORDER_ID}", "token": "tok_\\udfffvisa"}}', "token"),
    ],
)
async def test_text_that_is_not_clean_is_a_400_on_its_field(
    client: httpx.AsyncClient, open_order: str, body: str, field: str
) -> None:
    res = await client.post("/api/payments", content=body.encode(), headers=JSON)
    assert res.status_code == 400, res.text
    assert [e["field"] for e in res.json()["errors"]] == [field]
