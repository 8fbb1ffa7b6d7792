"""The web client against a fake API (httpx.MockTransport): cookies, errors, forms, paging."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ticketing_client.api import Api
from ticketing_client.main import create_app
from ticketing_client.settings import Settings
from ticketing_testing.apps import running

SETTINGS = Settings(client_api_url="http://api.test", client_replica_wait_seconds=0.3)
ALICE = {"id": "a" * 24, "email": "alice@example.com"}
TICKET = {"id": "1" * 24, "title": "Jazz", "price": 19.9, "userId": "b" * 24, "orderId": None}


class FakeApi:
    """Answers like the API: a session cookie `session=alice` is Alice."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.down = False
        self.tickets = [
            {**TICKET, "id": f"{i:024x}", "title": f"Ticket {i}"} for i in range(10, 0, -1)
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.down:
            return httpx.Response(502, json={"errors": [{"message": "Service unavailable"}]})
        path, cookie = request.url.path, request.headers.get("cookie", "")
        if path == "/api/users/currentuser":
            return httpx.Response(200, json={"currentUser": ALICE if "alice" in cookie else None})
        if path == "/api/users/signin":
            body = json.loads(request.content)
            if body["email"] == "busy@example.com":
                message = "Too many attempts, please try again in 42 seconds"
                return httpx.Response(
                    429, json={"errors": [{"message": message}]}, headers={"retry-after": "42"}
                )
            if body["email"] == "proxy@example.com":  # a proxy's own 429, not the API's shape
                return httpx.Response(429, text="<html>429 Too Many Requests</html>")
            if body["password"] != "password123":
                return httpx.Response(400, json={"errors": [{"message": "Invalid credentials"}]})
            return httpx.Response(
                200,
                json=ALICE,
                headers={"set-cookie": "session=alice; HttpOnly; Path=/; SameSite=lax"},
            )
        if path == "/api/users/signup":
            return httpx.Response(
                400, json={"errors": [{"message": "Email must be valid", "field": "email"}]}
            )
        if path == "/api/tickets" and request.method == "GET":
            limit = int(request.url.params["limit"])
            before = request.url.params.get("before")
            items = [t for t in self.tickets if before is None or t["id"] < before]
            return httpx.Response(200, json=items[:limit])
        if path == "/api/tickets" and request.method == "POST":
            return httpx.Response(201, json={**TICKET, **json.loads(request.content)})
        if path == f"/api/tickets/{TICKET['id']}":
            return httpx.Response(200, json=TICKET)
        if path == "/api/boom":
            return httpx.Response(500, text="Traceback (most recent call last): secret")
        return httpx.Response(404, json={"errors": [{"message": "Not Found"}]})


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def client(fake: FakeApi) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS, transport=httpx.MockTransport(fake))
    async with running(app) as client:
        yield client


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200


async def test_the_shared_api_client_never_keeps_a_session(fake: FakeApi) -> None:
    api = Api(SETTINGS, transport=httpx.MockTransport(fake))
    try:
        signed_in = await api.call(
            "POST",
            "/api/users/signin",
            cookie=None,
            body={"email": "alice@example.com", "password": "password123"},
        )
        assert signed_in.set_cookies == ["session=alice; HttpOnly; Path=/; SameSite=lax"]
        anonymous = await api.call("GET", "/api/users/currentuser", cookie=None)
        assert anonymous.body == {"currentUser": None}
        assert "cookie" not in fake.seen[-1].headers
        assert len(api.http.cookies) == 0
    finally:
        await api.aclose()


async def test_sign_in_passes_set_cookie_back_and_forwards_only_the_browsers_cookie(
    client: httpx.AsyncClient, fake: FakeApi
) -> None:
    res = await client.post(
        "/auth/signin",
        data={"email": "alice@example.com", "password": "password123", "next": "/orders"},
    )
    assert res.status_code == 303
    assert res.headers["location"] == "/orders"
    assert res.headers.get_list("set-cookie") == ["session=alice; HttpOnly; Path=/; SameSite=lax"]
    # Another browser, with no cookie of its own, is nobody.
    client.cookies.clear()
    page = await client.get("/")
    assert "Sign in" in page.text
    assert "My orders" not in page.text
    # The signed-in browser's own cookie is what the API sees.
    page = await client.get("/", headers={"cookie": "session=alice"})
    assert "My orders" in page.text
    assert fake.seen[-2].headers["cookie"] == "session=alice"


async def test_every_api_call_carries_the_browsers_address(
    client: httpx.AsyncClient, fake: FakeApi
) -> None:
    """As a proxy: what the request said (a gateway's X-Forwarded-For), then its peer; the API
    believes only its trusted proxies' part, so every browser is not this one client."""
    await client.post(
        "/auth/signin",
        data={"email": "alice@example.com", "password": "password123"},
        headers={"x-forwarded-for": "203.0.113.7"},
    )
    assert fake.seen[-1].headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    await client.get("/", headers={"cookie": "session=alice"})
    assert {r.headers["x-forwarded-for"] for r in fake.seen[-2:]} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("busy@example.com", "Too many attempts, please try again in 42 seconds"),
        ("proxy@example.com", "Too many attempts, please wait a minute and try again."),
    ],
)
async def test_too_many_sign_in_attempts_is_a_friendly_message_on_the_form(
    client: httpx.AsyncClient, email: str, message: str
) -> None:
    res = await client.post("/auth/signin", data={"email": email, "password": "password123"})
    assert res.status_code == 429
    assert message in res.text
    assert f'value="{email}"' in res.text
    assert "<html>429" not in res.text


async def test_sign_in_never_redirects_off_site(client: httpx.AsyncClient) -> None:
    res = await client.post(
        "/auth/signin",
        data={"email": "alice@example.com", "password": "password123", "next": "//evil.test"},
    )
    assert res.headers["location"] == "/"


async def test_form_errors_keep_the_email_and_sit_next_to_their_field(
    client: httpx.AsyncClient,
) -> None:
    res = await client.post("/auth/signup", data={"email": "nope", "password": "password123"})
    assert res.status_code == 400
    assert 'id="email-error">Email must be valid' in res.text
    assert 'value="nope"' in res.text
    res = await client.post("/auth/signin", data={"email": "a@b.co", "password": "x"})
    assert 'role="alert"' in res.text
    assert "Invalid credentials" in res.text


async def test_a_price_is_sent_with_two_decimals(client: httpx.AsyncClient, fake: FakeApi) -> None:
    res = await client.post(
        "/tickets/new", data={"title": "Jazz", "price": "$1,250.5"}, headers={"cookie": "alice"}
    )
    assert res.status_code == 303
    assert fake.seen[-1].content == b'{"title": "Jazz", "price": 1250.50}'
    res = await client.post(
        "/tickets/new", data={"title": "Jazz", "price": "1.999"}, headers={"cookie": "alice"}
    )
    assert res.status_code == 400
    assert "Price must be in dollars and cents" in res.text


async def test_private_pages_ask_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/orders", "/tickets/new", f"/orders/{'1' * 24}"):
        res = await client.get(path)
        assert res.status_code == 303
        assert res.headers["location"].startswith("/auth/signin?next=/")


async def test_pages_go_back_and_forth_over_the_cursor(fake: FakeApi) -> None:
    app = create_app(
        Settings(client_api_url="http://api.test", client_page_size=4),
        transport=httpx.MockTransport(fake),
    )
    async with running(app) as client:
        first = await client.get("/")
        assert "Ticket 10" in first.text
        assert "Ticket 6" not in first.text
        assert "Newer tickets" not in first.text
        second = await client.get(f"/?before={7:024x}")
        assert "Ticket 6" in second.text
        assert 'href="/"' in second.text  # Previous: the first page
        third = await client.get(f"/?before={3:024x}&trail={7:024x}")
        assert "Ticket 2" in third.text
        assert "Older tickets" not in third.text
        assert f'href="/?before={7:024x}"' in third.text
        assert (await client.get("/?before=nonsense")).status_code == 404


async def test_unknown_pages_are_404_pages(client: httpx.AsyncClient) -> None:
    for path in ("/nope", f"/tickets/{'9' * 24}", "/tickets/x", "/orders/x/status"):
        res = await client.get(path, headers={"cookie": "alice"})
        assert res.status_code == 404
        if "status" not in path:
            assert "Page not found" in res.text


async def test_a_restarting_api_is_a_503_page(client: httpx.AsyncClient, fake: FakeApi) -> None:
    fake.down = True
    res = await client.get("/")
    assert res.status_code == 503
    assert "The service is restarting" in res.text
    assert res.headers["retry-after"] == "5"


async def test_an_unreachable_api_is_a_503_page() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    app = create_app(SETTINGS, transport=httpx.MockTransport(refuse))
    async with running(app) as client:
        assert (await client.get("/")).status_code == 503


async def test_a_failure_is_an_error_page_without_a_trace(fake: FakeApi) -> None:
    app = create_app(SETTINGS, transport=httpx.MockTransport(fake))

    @app.get("/explode")
    async def explode() -> Any:
        raise RuntimeError("secret internals")

    async with running(app) as client:
        res = await client.get("/explode")
    assert res.status_code == 500
    assert "Something went wrong" in res.text
    assert "secret" not in res.text
    assert "Traceback" not in res.text
