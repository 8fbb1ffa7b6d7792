"""Requests drawn from orders' own OpenAPI document: every answer is one it documents."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketing_orders.main import create_app
from ticketing_orders.settings import Settings
from ticketing_testing.apps import TEST_JWT_KEY
from ticketing_testing.openapi import cases, fuzz_settings, schema_of, send, validate
from ticketing_testing.plugin import UserHeaders

SCHEMA = schema_of(create_app(Settings(environment="test", jwt_key=TEST_JWT_KEY)))
OWNER = "6500000000000000000000bb"
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def own_order(place_order: PlaceOrder, user_headers: UserHeaders) -> dict[str, Any]:
    return await place_order(headers=user_headers(OWNER))


@fuzz_settings(SCHEMA)
@given(data=st.data())
async def test_every_answer_is_documented(
    client: httpx.AsyncClient,
    user_headers: UserHeaders,
    own_order: dict[str, Any],
    data: st.DataObject,
) -> None:
    case = data.draw(cases(SCHEMA, {"order_id": own_order["id"]}))
    validate(case, await send(client, case, user_headers(OWNER)))
