"""Security of the API as a whole: the four API services in-process (in-memory Mongo and bus,
the fake Stripe), each route of each of them as an anonymous caller, another user and the owner;
session tokens that must sign nobody in; the session cookie; the body size limit; operator-shaped
input; and no trace or secret in an error body or the logs."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from bson import ObjectId
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import SecretStr

from ticketing_auth import accounts
from ticketing_auth.main import create_app as auth_app
from ticketing_auth.settings import Settings as AuthSettings
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.settings import ServiceSettings
from ticketing_fakestripe import FakeStripeServer
from ticketing_orders.main import create_app as orders_app
from ticketing_orders.settings import Settings as OrdersSettings
from ticketing_payments.main import create_app as payments_app
from ticketing_payments.settings import Settings as PaymentsSettings
from ticketing_testing.apps import TEST_JWT_KEY, assert_error_shape, cookie_header, running
from ticketing_testing.events import delivered, on_sale, order_created
from ticketing_testing.mongo import in_memory_mongo
from ticketing_tickets.main import create_app as tickets_app
from ticketing_tickets.settings import Settings as TicketsSettings

OWNER = str(ObjectId())
OTHER = str(ObjectId())
PASSWORD = "correct-horse-battery"
ROLES = ("anonymous", "other", "owner")


@dataclass
class World:
    """The four services running, and what the owner has in each."""

    clients: dict[str, httpx.AsyncClient]
    settings: dict[str, ServiceSettings]
    buses: dict[str, InMemoryBus]
    apps: dict[str, FastAPI]
    ids: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        # Every service shares the key; any service's settings sign a session.
        return cookie_header(self.settings["tickets"], OWNER if role == "owner" else OTHER)


def _settings(stripe: FakeStripeServer) -> dict[str, ServiceSettings]:
    common: dict[str, Any] = {"environment": "test", "jwt_key": TEST_JWT_KEY}
    return {
        "auth": AuthSettings(**common, redis_url="memory://"),
        "tickets": TicketsSettings(**common),
        "orders": OrdersSettings(**common),
        "payments": PaymentsSettings(
            **common,
            stripe_key=SecretStr("sk_test_local"),
            stripe_api_base=stripe.base_url,
        ),
    }


FACTORIES: dict[str, Callable[..., FastAPI]] = {
    "auth": auth_app,
    "tickets": tickets_app,
    "orders": orders_app,
    "payments": payments_app,
}


@pytest.fixture
async def world(fake_stripe: FakeStripeServer) -> AsyncIterator[World]:
    settings = _settings(fake_stripe)
    buses = {name: InMemoryBus(name) for name in FACTORIES}
    apps = {
        name: FACTORIES[name](settings[name], mongo=in_memory_mongo(), bus=buses[name])
        for name in FACTORIES
    }
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(running(app)) for name, app in apps.items()
        }
        world = World(clients, settings, buses, apps)
        owner = world.headers("owner")
        res = await clients["auth"].post(
            "/api/users/signup", json={"email": "owner@test.com", "password": PASSWORD}
        )
        world.ids["user"] = res.json()["id"]
        res = await clients["tickets"].post(
            "/api/tickets", json={"title": "Jazz", "price": 10}, headers=owner
        )
        world.ids["ticket"] = res.json()["id"]
        res = await clients["orders"].post(
            "/api/orders", json={"ticketId": await on_sale(buses["orders"])}, headers=owner
        )
        world.ids["order"] = res.json()["id"]
        event = order_created(user_id=OWNER)
        await delivered(buses["payments"], event)
        world.ids["payable"] = event.data.id
        yield world


# --- every route x {anonymous, other user, owner} -----------------------------------------------

Body = Callable[[World, str], Awaitable[Any]]


async def no_body(world: World, role: str) -> None:
    return None


async def credentials(world: World, role: str) -> dict[str, str]:
    return {"email": "owner@test.com", "password": PASSWORD}


async def new_account(world: World, role: str) -> dict[str, str]:
    return {"email": f"new-{role}@test.com", "password": PASSWORD}


async def a_ticket(world: World, role: str) -> dict[str, Any]:
    return {"title": f"{role}'s ticket", "price": 12.5}


async def a_ticket_on_sale(world: World, role: str) -> dict[str, str]:
    return {"ticketId": await on_sale(world.buses["orders"])}


async def a_payment(world: World, role: str) -> dict[str, str]:
    return {"orderId": world.ids["payable"], "token": "tok_visa"}


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str  # with {ticket}, {order} for the owner's
    body: Body
    # The status for the anonymous caller, another signed-in user and the owner.
    expected: tuple[int, int, int]


# One row per route of every API service: a route missing here fails `test_the_table_...`.
TABLE = [
    Row("auth", "POST", "/api/users/signup", new_account, (201, 201, 201)),
    Row("auth", "POST", "/api/users/signin", credentials, (200, 200, 200)),
    Row("auth", "POST", "/api/users/signout", no_body, (200, 200, 200)),
    Row("auth", "GET", "/api/users/currentuser", no_body, (200, 200, 200)),
    Row("tickets", "POST", "/api/tickets", a_ticket, (401, 201, 201)),
    Row("tickets", "GET", "/api/tickets", no_body, (200, 200, 200)),
    Row("tickets", "GET", "/api/tickets/{ticket}", no_body, (200, 200, 200)),
    Row("tickets", "PUT", "/api/tickets/{ticket}", a_ticket, (401, 401, 200)),
    Row("orders", "POST", "/api/orders", a_ticket_on_sale, (401, 201, 201)),
    Row("orders", "GET", "/api/orders", no_body, (401, 200, 200)),
    Row("orders", "GET", "/api/orders/{order}", no_body, (401, 401, 200)),
    Row("orders", "DELETE", "/api/orders/{order}", no_body, (401, 401, 204)),
    Row("payments", "POST", "/api/payments", a_payment, (401, 401, 201)),
    *(
        Row(service, "GET", path, no_body, (200, 200, 200))
        for service in ("auth", "tickets", "orders", "payments")
        # /metrics too: open, but only on the pod's port (neither the gateway nor the Ingress
        # routes it; tools/devstack/tests/test_gateway.py and the deployment checks).
        for path in ("/healthz", "/readyz", "/metrics")
    ),
]
TEMPLATES = {"{ticket}": "{ticket_id}", "{order}": "{order_id}"}


def route_of(row: Row) -> tuple[str, str, str]:
    path = row.path
    for ours, fastapi in TEMPLATES.items():
        path = path.replace(ours, fastapi)
    return row.service, row.method, path


async def call(world: World, row: Row, role: str, headers: dict[str, str]) -> httpx.Response:
    body = await row.body(world, role)
    client = world.clients[row.service]
    return await client.request(row.method, _path(world, row), json=body, headers=headers)


def test_the_table_names_every_route_of_every_service(fake_stripe: FakeStripeServer) -> None:
    settings = _settings(fake_stripe)
    routes = {
        (name, method, context.path)
        for name, factory in FACTORIES.items()
        for context in iter_route_contexts(factory(settings[name]).routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods
    }
    assert routes == {route_of(row) for row in TABLE}


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.service} {r.method} {r.path}")
async def test_every_route_answers_each_caller_as_its_owner_rules_say(
    world: World, row: Row
) -> None:
    for role, expected in zip(ROLES, row.expected, strict=True):
        res = await call(world, row, role, world.headers(role))
        assert res.status_code == expected, (role, res.text)
        assert_error_shape(res)


async def test_another_user_sees_none_of_the_owners_orders(world: World) -> None:
    for role, count in (("other", 0), ("owner", 1)):
        res = await world.clients["orders"].get("/api/orders", headers=world.headers(role))
        assert [o["id"] for o in res.json()] == [world.ids["order"]] * count


# --- sessions that sign nobody in ---------------------------------------------------------------


def _claims() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"sub": OWNER, "email": "owner@test.com", "iat": now, "exp": now + timedelta(hours=1)}


BAD_TOKENS: dict[str, Callable[[], str]] = {
    "signed with another key": lambda: jwt.encode(
        _claims(), "another-key-of-at-least-32-bytes-0123456789", algorithm="HS256"
    ),
    "alg none": lambda: jwt.encode(_claims(), None, algorithm="none"),
    "expired": lambda: jwt.encode(
        {**_claims(), "exp": datetime.now(UTC) - timedelta(seconds=1)},
        TEST_JWT_KEY,
        algorithm="HS256",
    ),
    "without expiry": lambda: jwt.encode(
        {"sub": OWNER, "email": "owner@test.com"}, TEST_JWT_KEY, algorithm="HS256"
    ),
    "HS512 with the right key": lambda: _hs512(),
    "tampered payload": lambda: _tampered(),
    "not a token": lambda: "not.a.token",
}


def _hs512() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(_claims(), TEST_JWT_KEY, algorithm="HS512")


def _tampered() -> str:
    head, _, sig = jwt.encode(_claims(), TEST_JWT_KEY, algorithm="HS256").split(".")
    other = jwt.encode({**_claims(), "sub": OTHER}, "x" * 40, algorithm="HS256").split(".")[1]
    return f"{head}.{other}.{sig}"


PROTECTED = [row for row in TABLE if row.expected[0] == 401]


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_a_bad_token_is_nobody_on_every_protected_route(world: World, kind: str) -> None:
    cookie = {"cookie": f"session={BAD_TOKENS[kind]()}"}
    for row in PROTECTED:
        res = await call(world, row, "owner", cookie)
        assert res.status_code == 401, (row.path, res.text)
        assert res.json() == {"errors": [{"message": "Not authorized"}]}
    res = await world.clients["auth"].get("/api/users/currentuser", headers=cookie)
    assert res.json() == {"currentUser": None}


async def test_the_session_of_a_deleted_account_is_nobody_to_auth(world: World) -> None:
    """What the product does with a deleted account (see docs/security.md, "Sessions"): auth,
    where the accounts are, signs nobody in; the other services never call auth and accept the
    token until it expires (at most JWT_TTL_SECONDS)."""
    auth = world.clients["auth"]
    res = await auth.post(
        "/api/users/signin", json={"email": "owner@test.com", "password": PASSWORD}
    )
    session = {"cookie": f"session={res.cookies['session']}"}
    assert (await auth.get("/api/users/currentuser", headers=session)).json()["currentUser"]
    db = world.apps["auth"].state.runtime.db
    await db["users"].delete_one({"_id": ObjectId(world.ids["user"])})
    accounts.forget(db, user_id=world.ids["user"])  # what a deletion in the product would do
    res = await auth.get("/api/users/currentuser", headers=session)
    assert res.json() == {"currentUser": None}
    assert "max-age=0" in res.headers["set-cookie"].lower()


# --- the session cookie -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/users/signup", "/api/users/signin"])
async def test_the_session_cookie_is_httponly_lax_secure_and_expires(
    world: World, path: str
) -> None:
    body = {"email": "cookie@test.com" if path.endswith("signup") else "owner@test.com"}
    res = await world.clients["auth"].post(path, json={**body, "password": PASSWORD})
    assert res.status_code in (200, 201)
    cookie, *attributes = [f.strip() for f in res.headers["set-cookie"].split(";")]
    assert cookie.startswith("session=")
    ttl = world.settings["auth"].jwt_ttl_seconds
    flags = {a.lower() for a in attributes}
    assert {"httponly", "samesite=lax", "secure", "path=/", f"max-age={ttl}"} <= flags
    token = cookie.removeprefix("session=")
    assert (
        jwt.decode(token, TEST_JWT_KEY, algorithms=["HS256"])["exp"]
        <= (datetime.now(UTC) + timedelta(seconds=ttl + 5)).timestamp()
    )


async def test_signout_clears_the_cookie_with_the_same_flags(world: World) -> None:
    res = await world.clients["auth"].post("/api/users/signout", headers=world.headers("owner"))
    flags = {f.strip().lower() for f in res.headers["set-cookie"].split(";")}
    assert {"httponly", "samesite=lax", "secure", "path=/", "max-age=0"} <= flags


# --- no user enumeration on sign-in -------------------------------------------------------------


async def test_signin_says_the_same_for_an_unknown_email_and_a_wrong_password(
    world: World,
) -> None:
    auth = world.clients["auth"]
    unknown = await auth.post(
        "/api/users/signin", json={"email": "nobody@test.com", "password": PASSWORD}
    )
    wrong = await auth.post(
        "/api/users/signin", json={"email": "owner@test.com", "password": "wrong-password"}
    )
    assert (unknown.status_code, unknown.content) == (wrong.status_code, wrong.content)
    assert unknown.json() == {"errors": [{"message": "Invalid credentials"}]}
    assert sorted(unknown.headers.keys()) == sorted(wrong.headers.keys())
    assert "set-cookie" not in unknown.headers
    # Same time too: services/auth/tests/test_users.py (one Argon2 verification either way).


# --- body size limit and operator-shaped input, on every route that takes a body ----------------

WITH_BODY = [row for row in TABLE if row.body is not no_body]


@pytest.mark.parametrize("row", WITH_BODY, ids=lambda r: f"{r.method} {r.path}")
async def test_every_body_over_the_limit_is_413_streamed_or_not(world: World, row: Row) -> None:
    limit = world.settings[row.service].max_body_bytes
    big = b'{"title": "' + b"x" * limit + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    client = world.clients[row.service]
    headers = {**world.headers("owner"), "content-type": "application/json"}
    for content in (big, chunks()):
        res = await client.request(row.method, _path(world, row), content=content, headers=headers)
        assert res.status_code == 413
        assert res.json() == {"errors": [{"message": "Request body too large"}]}


OPERATORS: list[Any] = [{"$gt": ""}, {"$ne": None}, {"$regex": ".*"}, ["$where"], {"$where": "1"}]


@pytest.mark.parametrize("row", WITH_BODY, ids=lambda r: f"{r.method} {r.path}")
async def test_operator_shaped_input_is_a_400_on_every_body_field(world: World, row: Row) -> None:
    valid = await row.body(world, "owner")
    for name in valid:
        for operator in OPERATORS:
            body = {**valid, name: operator}
            res = await world.clients[row.service].request(
                row.method, _path(world, row), json=body, headers=world.headers("owner")
            )
            assert res.status_code == 400, (name, operator, res.text)
            assert {e.get("field") for e in res.json()["errors"]} == {name}


def _path(world: World, row: Row) -> str:
    return row.path.replace("{ticket}", world.ids["ticket"]).replace("{order}", world.ids["order"])


@pytest.mark.parametrize(
    ("service", "template"),
    [("tickets", "/api/tickets/{}"), ("orders", "/api/orders/{}")],
)
async def test_operator_shaped_ids_and_cursors_find_nothing(
    world: World, service: str, template: str
) -> None:
    client, owner = world.clients[service], world.headers("owner")
    for text in ['{"$gt": ""}', "$gt", "[$ne]=1", ".*"]:
        res = await client.get(template.format(quote(text, safe="")), headers=owner)
        assert res.status_code == 404, res.text
        listing = template.removesuffix("/{}")
        res = await client.get(listing, params={"before": text}, headers=owner)
        assert (res.status_code, res.json()["errors"][0]["field"]) == (400, "before")
        res = await client.get(f"{listing}?before[$gt]=&limit[$ne]=1", headers=owner)
        assert res.status_code == 200  # parameters it does not know are not read


# --- no trace or secret in an error body or a log -----------------------------------------------


async def test_no_trace_or_secret_in_any_error_body_or_log(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ticketing_tickets import repository

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail at /srv/tickets")

    monkeypatch.setattr(repository, "get_ticket", broken)
    caplog.set_level(logging.DEBUG)
    auth, secret_password = world.clients["auth"], "my-secret-password-123"
    answers = [
        await auth.post(
            "/api/users/signup", json={"email": "s@test.com", "password": secret_password}
        ),
        await auth.post(
            "/api/users/signin", json={"email": "s@test.com", "password": "wrong-pass"}
        ),
        await auth.post(
            "/api/users/signin", json={"email": "s@test.com", "password": secret_password}
        ),
        await world.clients["tickets"].get(f"/api/tickets/{world.ids['ticket']}"),
        await world.clients["tickets"].post(
            "/api/tickets", content=b'{"title": ', headers={"content-type": "application/json"}
        ),
        await world.clients["orders"].get(
            "/api/orders", headers={"cookie": f"session={BAD_TOKENS['alg none']()}"}
        ),
    ]
    session = answers[2].cookies["session"]
    assert answers[3].status_code == 500
    assert answers[3].json() == {"errors": [{"message": "Something went wrong on our side"}]}
    secrets = [secret_password, TEST_JWT_KEY, session, "sk_test_local", "$argon2"]
    for res in answers:
        for text in ("Traceback", 'File "', "internal detail", *secrets):
            if res.status_code >= 400:
                assert text not in res.text, (res.request.url, text)
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in logged, secret
    # The fault itself is logged (where an operator looks), with the request it failed.
    assert any(r.levelno == logging.ERROR for r in caplog.records)
