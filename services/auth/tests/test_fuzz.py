"""Any JSON at all, in every field of every body: never a 5xx, always the error shape."""

import httpx
import pytest
from hypothesis import given

from ticketing_testing.apps import assert_error_shape
from ticketing_testing.hostile import FUZZ, JSON, hostile_bodies
from ticketing_testing.mongo import EVERY_MONGO

CREDENTIALS = {"email": '"fuzz@example.com"', "password": '"password123"'}


# Both Mongos: only the real driver encodes queries as BSON (where bad text used to fail).
pytestmark = pytest.mark.parametrize("mongo", EVERY_MONGO, indirect=True)


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
