"""Requests drawn from payments' own OpenAPI document: every answer is one it documents."""

import httpx
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings
from ticketing_testing.apps import TEST_JWT_KEY
from ticketing_testing.openapi import cases, fuzz_settings, schema_of, send, validate

SCHEMA = schema_of(
    create_app(
        Settings(
            environment="test",
            jwt_key=TEST_JWT_KEY,
            stripe_key=SecretStr("sk_test_local"),
            stripe_api_base="http://127.0.0.1:9",  # only for the document: never called
        )
    )
)


@fuzz_settings(SCHEMA)
@given(data=st.data())
async def test_every_answer_is_documented(client: httpx.AsyncClient, data: st.DataObject) -> None:
    """As the buyer the `client` fixture signs in (payments' one operation has no path id)."""
    validate(case := data.draw(cases(SCHEMA)), await send(client, case))
