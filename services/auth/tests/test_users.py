"""The reference app's auth tests, ported, plus ours on top."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from bson import ObjectId

from ticketing_auth import accounts
from ticketing_auth.settings import Settings
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.mongo import Database
from ticketing_testing.apps import only_error
from ticketing_testing.waiting import eventually

CREDS = {"email": "test@test.com", "password": "password123"}


async def signup(client: httpx.AsyncClient, **overrides: str) -> httpx.Response:
    return await client.post("/api/users/signup", json={**CREDS, **overrides})


# --- signup -------------------------------------------------------------------------------------


async def test_signup_returns_201_and_sets_the_session_cookie(client: httpx.AsyncClient) -> None:
    res = await signup(client)
    assert res.status_code == 201
    body = res.json()
    assert body["email"] == "test@test.com"
    assert set(body) == {"id", "email"}
    cookie = res.headers["set-cookie"].lower()
    assert cookie.startswith("session=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" in cookie
    assert "max-age=86400" in cookie


async def test_the_session_token_expires_with_the_cookie(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    res = await signup(client)
    token = res.cookies["session"]
    claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == settings.jwt_ttl_seconds == 86400
    assert claims["sub"] == res.json()["id"]
    assert "password" not in claims


@pytest.mark.parametrize("email", ["alskdflaskjfd", "", "a@b", "a b@c.com", "@b.co"])
async def test_signup_rejects_an_invalid_email(client: httpx.AsyncClient, email: str) -> None:
    res = await signup(client, email=email)
    assert res.status_code == 400
    assert only_error(res) == {"message": "Email must be valid", "field": "email"}


@pytest.mark.parametrize("password", ["p", "1234567", "x" * 129])
async def test_signup_rejects_a_password_of_the_wrong_length(
    client: httpx.AsyncClient, password: str
) -> None:
    res = await signup(client, password=password)
    assert res.status_code == 400
    assert only_error(res) == {
        "message": "Password must be between 8 and 128 characters",
        "field": "password",
    }


async def test_signup_accepts_the_password_length_bounds(client: httpx.AsyncClient) -> None:
    assert (await signup(client, email="a@b.co", password="x" * 8)).status_code == 201
    assert (await signup(client, email="c@d.co", password="x" * 128)).status_code == 201


async def test_signup_with_missing_fields_names_each_field(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/users/signup", json={"email": "test@test.com"})
    assert res.status_code == 400
    assert only_error(res)["field"] == "password"
    res = await client.post("/api/users/signup", json={"password": "password123"})
    assert only_error(res)["field"] == "email"
    res = await client.post("/api/users/signup", json={})
    assert res.status_code == 400
    assert {e["field"] for e in res.json()["errors"]} == {"email", "password"}


async def test_signup_rejects_a_duplicate_email(client: httpx.AsyncClient) -> None:
    assert (await signup(client)).status_code == 201
    res = await signup(client, email="TEST@test.com ")
    assert res.status_code == 400
    assert only_error(res) == {"message": "Email in use"}


async def test_concurrent_signups_of_one_email_exactly_one_wins(client: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*(signup(client) for _ in range(5)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 400, 400, 400, 400]


async def test_signup_publishes_user_created_through_the_outbox(
    client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    res = await signup(client)

    async def published() -> bool:
        return len(bus.published_on(Subject.USER_CREATED)) == 1

    await eventually(published)
    event = bus.published_on(Subject.USER_CREATED)[0]
    assert event.data.id == res.json()["id"]
    assert event.data.email == "test@test.com"


async def test_signup_never_returns_or_logs_the_password(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    res = await signup(client, password="sup3r-secret-pw")
    assert "sup3r-secret-pw" not in res.text
    assert "argon2" not in res.text
    assert "sup3r-secret-pw" not in caplog.text
    assert "argon2" not in caplog.text


# --- signin -------------------------------------------------------------------------------------


async def test_signin_with_an_unknown_email_fails(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/users/signin", json=CREDS)
    assert res.status_code == 400
    assert only_error(res) == {"message": "Invalid credentials"}
    assert "set-cookie" not in res.headers


async def test_signin_with_a_wrong_password_fails_the_same_way(client: httpx.AsyncClient) -> None:
    await signup(client)
    res = await client.post("/api/users/signin", json={**CREDS, "password": "wrong-password"})
    assert res.status_code == 400
    assert only_error(res) == {"message": "Invalid credentials"}


async def test_signin_requires_a_password(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/users/signin", json={"email": "test@test.com", "password": ""})
    assert res.status_code == 400
    assert only_error(res) == {"message": "You must supply a password", "field": "password"}


async def test_signin_requires_a_valid_email(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/users/signin", json={"email": "nope", "password": "x"})
    assert only_error(res) == {"message": "Email must be valid", "field": "email"}


async def test_signin_sets_the_cookie(client: httpx.AsyncClient) -> None:
    await signup(client)
    client.cookies.clear()
    res = await client.post("/api/users/signin", json=CREDS)
    assert res.status_code == 200
    assert res.json()["email"] == "test@test.com"
    assert res.headers["set-cookie"].startswith("session=")


async def test_signin_takes_similar_time_for_unknown_email_and_wrong_password(
    client: httpx.AsyncClient,
) -> None:
    """Both paths run one Argon2 verification; neither returns early."""
    await signup(client)

    async def timed(body: dict[str, str]) -> float:
        started = asyncio.get_running_loop().time()
        res = await client.post("/api/users/signin", json=body)
        assert res.status_code == 400
        return asyncio.get_running_loop().time() - started

    wrong = min([await timed({**CREDS, "password": "wrong-password"}) for _ in range(3)])
    unknown = min([await timed({**CREDS, "email": "nobody@test.com"}) for _ in range(3)])
    # An early return for unknown emails would be ~100x faster than an Argon2 verify.
    assert unknown > wrong / 3


# --- signout and currentuser --------------------------------------------------------------------


async def test_signout_clears_the_cookie(client: httpx.AsyncClient) -> None:
    await signup(client)
    res = await client.post("/api/users/signout", json={})
    assert res.status_code == 200
    assert res.json() == {}
    cookie = res.headers["set-cookie"].lower()
    assert cookie.startswith('session=""') or cookie.startswith("session=;")
    assert "max-age=0" in cookie or "expires=thu, 01 jan 1970" in cookie
    assert (await client.get("/api/users/currentuser")).json() == {"currentUser": None}


async def test_currentuser_with_a_session(client: httpx.AsyncClient) -> None:
    user = (await signup(client)).json()
    res = await client.get("/api/users/currentuser")
    assert res.status_code == 200
    assert res.json() == {"currentUser": {"id": user["id"], "email": "test@test.com"}}


async def test_currentuser_without_a_session_is_null(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/users/currentuser")
    assert res.status_code == 200
    assert res.json() == {"currentUser": None}


def _token(settings: Settings, **claims: object) -> str:
    now = datetime.now(UTC)
    payload = {"sub": "abc", "email": "x@y.co", "iat": now, "exp": now + timedelta(hours=1)}
    payload.update(claims)
    return jwt.encode(payload, settings.jwt_secret, algorithm="HS256")


async def _currentuser_with(client: httpx.AsyncClient, token: str) -> object:
    client.cookies.set("session", token)
    body: object = (await client.get("/api/users/currentuser")).json()
    return body


async def test_a_valid_token_is_accepted(client: httpx.AsyncClient, settings: Settings) -> None:
    user = (await signup(client)).json()
    body = await _currentuser_with(client, _token(settings, sub=user["id"]))
    assert body == {"currentUser": user}


async def test_the_token_of_a_deleted_account_signs_nobody_in_and_is_cleared(
    client: httpx.AsyncClient, db: Database
) -> None:
    """Auth, where the accounts are, checks the account still exists; (the other services
    trust a valid token until it expires: they never call auth)."""
    user = (await signup(client)).json()
    assert (await client.get("/api/users/currentuser")).json() == {"currentUser": user}
    await db["users"].delete_one({"_id": ObjectId(user["id"])})
    accounts.forget(db, user_id=user["id"])  # what a deletion in the product would do
    res = await client.get("/api/users/currentuser")
    assert res.json() == {"currentUser": None}
    assert "max-age=0" in res.headers["set-cookie"].lower()
    assert "session" not in client.cookies


async def test_a_valid_token_of_an_id_that_is_not_an_account_signs_nobody_in(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    for sub in ("abc", str(ObjectId()), '{"$gt": ""}'):
        assert await _currentuser_with(client, _token(settings, sub=sub)) == {"currentUser": None}


async def test_a_tampered_token_is_not_signed_in(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    head, _payload, sig = _token(settings).split(".")
    forged = jwt.encode(
        {"sub": "admin", "exp": 9999999999},
        "some-other-key-that-is-long-enough-0123",
        algorithm="HS256",
    )
    assert await _currentuser_with(client, f"{head}.{forged.split('.')[1]}.{sig}") == {
        "currentUser": None
    }
    assert await _currentuser_with(client, forged) == {"currentUser": None}


async def test_an_expired_token_is_not_signed_in(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    token = _token(settings, exp=past)
    assert await _currentuser_with(client, token) == {"currentUser": None}


async def test_a_token_without_expiry_is_not_signed_in(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = jwt.encode({"sub": "abc", "email": "x@y.co"}, settings.jwt_secret, algorithm="HS256")
    assert await _currentuser_with(client, token) == {"currentUser": None}


async def test_an_alg_none_token_is_not_signed_in(client: httpx.AsyncClient) -> None:
    token = jwt.encode({"sub": "abc", "email": "x@y.co", "exp": 9999999999}, None, algorithm="none")
    assert await _currentuser_with(client, token) == {"currentUser": None}


async def test_malformed_json_and_huge_bodies_are_client_errors(client: httpx.AsyncClient) -> None:
    res = await client.post(
        "/api/users/signup", content=b"{bad", headers={"content-type": "application/json"}
    )
    assert res.status_code == 400
    assert res.json() == {"errors": [{"message": "Request body must be valid JSON"}]}
    res = await client.post(
        "/api/users/signup",
        json={"email": "a@b.co", "password": "x" * (1024 * 1024)},
    )
    assert res.status_code == 413
    assert res.json() == {"errors": [{"message": "Request body too large"}]}
    res = await client.get("/api/users/nope")
    assert (res.status_code, res.json()) == (404, {"errors": [{"message": "Not Found"}]})
