"""Requests drawn from auth's own OpenAPI document: every answer is one it documents (its
rate limits included: the fuzz soon uses up its address's attempts)."""

import httpx
from hypothesis import given
from hypothesis import strategies as st

from ticketing_auth.main import create_app
from ticketing_auth.settings import Settings
from ticketing_testing.apps import TEST_JWT_KEY
from ticketing_testing.openapi import cases, fuzz_settings, schema_of, send, validate

SCHEMA = schema_of(create_app(Settings(environment="test", jwt_key=TEST_JWT_KEY)))


@fuzz_settings(SCHEMA)
@given(data=st.data())
async def test_every_answer_is_documented(client: httpx.AsyncClient, data: st.DataObject) -> None:
    case = data.draw(cases(SCHEMA))
    validate(case, await send(client, case))
