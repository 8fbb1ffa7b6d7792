"""Any JSON at all, in every field of every body: never a 5xx, always the error shape."""

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from ticketing_common.testing import assert_error_shape, hostile_bodies

# Every example runs against the one app of the test (its state accumulates, as in production).
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON = {"content-type": "application/json"}
CREDENTIALS = {"email": '"fuzz@example.com"', "password": '"password123"'}


@pytest.fixture
def mongo(any_mongo: Any) -> Any:
    """Both Mongos: only the real driver encodes queries as BSON (where bad text used to fail)."""
    return any_mongo


@FUZZ
@given(body=hostile_bodies(CREDENTIALS))
async def test_signup_survives_any_body(client: httpx.AsyncClient, body: bytes) -> None:
    assert_error_shape(await client.post("/api/users/signup", content=body, headers=JSON))


@FUZZ
@given(body=hostile_bodies(CREDENTIALS))
async def test_signin_survives_any_body(client: httpx.AsyncClient, body: bytes) -> None:
    assert_error_shape(await client.post("/api/users/signin", content=body, headers=JSON))


async def test_a_lone_surrogate_is_a_400_on_the_field_it_is_in(client: httpx.AsyncClient) -> None:
    cases = [
        ("signup", b'{"email": "x\\ud800@example.com", "password": "password123"}', "email"),
        ("signup", b'{"email": "a@example.com", "password": "pass\\ud800word"}', "password"),
        ("signin", b'{"email": "x\\ud800@example.com", "password": "password123"}', "email"),
        ("signin", b'{"email": "a@example.com", "password": "\\udfffpassword"}', "password"),
    ]
    for route, body, field in cases:
        res = await client.post(f"/api/users/{route}", content=body, headers=JSON)
        assert res.status_code == 400, res.text
        assert [e["field"] for e in res.json()["errors"]] == [field]
