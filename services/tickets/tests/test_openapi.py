"""Requests drawn from tickets' own OpenAPI document: every answer is one it documents."""

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketing_testing.apps import TEST_JWT_KEY
from ticketing_testing.openapi import cases, fuzz_settings, schema_of, send, validate
from ticketing_testing.plugin import UserHeaders
from ticketing_tickets.main import create_app
from ticketing_tickets.settings import Settings

SCHEMA = schema_of(create_app(Settings(environment="test", jwt_key=TEST_JWT_KEY)))
OWNER = "6500000000000000000000aa"


@pytest.fixture
async def own_ticket(client: httpx.AsyncClient, user_headers: UserHeaders) -> str:
    res = await client.post(
        "/api/tickets", json={"title": "Jazz", "price": 10}, headers=user_headers(OWNER)
    )
    return str(res.json()["id"])


@fuzz_settings(SCHEMA)
@given(data=st.data())
async def test_every_answer_is_documented(
    client: httpx.AsyncClient, user_headers: UserHeaders, own_ticket: str, data: st.DataObject
) -> None:
    case = data.draw(cases(SCHEMA, {"ticket_id": own_ticket}))
    validate(case, await send(client, case, user_headers(OWNER)))
