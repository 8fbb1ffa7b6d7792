"""The web client against a fake API (httpx.MockTransport): cookies, errors, forms, paging."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner

from ticketing_client import csrf
from ticketing_client.api import Api
from ticketing_client.main import create_app
from ticketing_client.settings import Settings
from ticketing_testing.apps import running

CSRF_KEY = "test-csrf-key-0123456789abcdef0123456789"
SETTINGS = Settings(
    environment="test",
    client_csrf_key=CSRF_KEY,
    client_auth_url="http://api.test",
    client_tickets_url="http://api.test",
    client_orders_url="http://api.test",
    client_payments_url="http://api.test",
    client_replica_wait_seconds=0.3,
)
CSRF_COOKIE = "__Host-csrf"  # cookies are Secure by default
ALICE = {"id": "a" * 24, "email": "alice@example.com"}
TICKET = {"id": "1" * 24, "title": "Jazz", "price": 19.9, "userId": "b" * 24, "orderId": None}
ALICES_TICKET = {**TICKET, "id": "4" * 24, "userId": ALICE["id"]}
ORDER = {
    "id": "2" * 24,
    "status": "created",
    "userId": ALICE["id"],
    "expiresAt": "2999-01-01T00:00:00Z",
    "ticket": {"id": TICKET["id"], "title": "Jazz", "price": 19.9},
}


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
        if path == f"/api/tickets/{ALICES_TICKET['id']}":
            return httpx.Response(200, json=ALICES_TICKET)
        if path == f"/api/orders/{ORDER['id']}" and "alice" in cookie:
            return httpx.Response(200, json=ORDER)
        if path == "/api/boom":
            return httpx.Response(500, text="Traceback (most recent call last): secret")
        return httpx.Response(404, json={"errors": [{"message": "Not Found"}]})


class Browser:
    """One browser on the client: its own cookies (a session, the CSRF nonce the client gives
    it), and the CSRF token the pages it loads carry, which its forms send."""

    def __init__(self, client: httpx.AsyncClient, session: str = "") -> None:
        self.client = client
        self.session = session
        self.nonce = ""

    @property
    def cookie(self) -> str:
        csrf = f"{CSRF_COOKIE}={self.nonce}" if self.nonce else ""
        return "; ".join(part for part in (self.session, csrf) if part)

    async def get(self, path: str) -> httpx.Response:
        res = await self.client.get(path, headers={"cookie": self.cookie})
        self.nonce = res.cookies.get(CSRF_COOKIE) or self.nonce
        return res

    async def token(self, page: str = "/") -> str:
        """The token of a page this browser loads."""
        html = (await self.get(page)).text
        match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
        assert match, page
        return match.group(1)

    async def post(
        self,
        path: str,
        data: dict[str, str],
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A form from one of this browser's pages (with its token, unless one is given)."""
        token = await self.token() if token is None else token
        return await self.client.post(
            path,
            data={**data, "csrf_token": token},
            headers={"cookie": self.cookie, **(headers or {})},
        )


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
    res = await Browser(client).post(
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
    """The address the trusted edge (127.0.0.1 here) gave, alone: not the chain the request
    came with, nor the edge's own, so the API counts the browser and nothing it wrote."""
    signin = {"email": "alice@example.com", "password": "password123"}
    await Browser(client).post(
        "/auth/signin", data=signin, headers={"x-forwarded-for": "203.0.113.7"}
    )
    assert fake.seen[-1].headers["x-forwarded-for"] == "203.0.113.7"
    # A browser's own X-Forwarded-For, that an appending proxy kept: only the proxy's part counts.
    forged = {"x-forwarded-for": "198.51.100.66, 203.0.113.7"}
    await Browser(client).post("/auth/signin", data=signin, headers=forged)
    assert fake.seen[-1].headers.get_list("x-forwarded-for") == ["203.0.113.7"]
    # No edge said anything: the peer itself.
    await client.get("/", headers={"cookie": "session=alice"})
    assert {r.headers["x-forwarded-for"] for r in fake.seen[-2:]} == {"127.0.0.1"}


async def test_x_forwarded_for_from_an_untrusted_peer_is_not_believed(fake: FakeApi) -> None:
    app = create_app(SETTINGS, transport=httpx.MockTransport(fake))
    async with app.router.lifespan_context(app):
        # A browser reaching the client itself (not through the edge) says it is someone else.
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as direct:
            await direct.get("/", headers={"x-forwarded-for": "203.0.113.7"})
    assert {r.headers["x-forwarded-for"] for r in fake.seen} == {"198.51.100.9"}


async def test_each_api_prefix_is_called_on_its_own_service(fake: FakeApi) -> None:
    """Directly, as in the cluster by their Services: not back through the edge."""
    urls = {
        "client_auth_url": "http://auth.test:8000",
        "client_tickets_url": "http://tickets.test:8000/",
        "client_orders_url": "http://orders.test:8000",
        "client_payments_url": "http://payments.test:8000",
    }
    api = Api(SETTINGS.model_copy(update=urls), transport=httpx.MockTransport(fake))
    try:
        for path, host in [
            ("/api/users/currentuser", "auth.test"),
            ("/api/tickets", "tickets.test"),
            (f"/api/tickets/{TICKET['id']}", "tickets.test"),
            ("/api/orders", "orders.test"),
            ("/api/payments", "payments.test"),
        ]:
            await api.call("GET", path, cookie=None, params={"limit": "1"})
            assert (fake.seen[-1].url.host, fake.seen[-1].url.port) == (host, 8000), path
            assert fake.seen[-1].url.path == path
        # A prefix is whole path segments, as the gateway and the Ingress route.
        with pytest.raises(ValueError, match="no API service serves /api/usersx"):
            await api.call("GET", "/api/usersx", cookie=None)
    finally:
        await api.aclose()
    # Unset, each is the local gateway, which routes every prefix.
    assert {url for _, url in Settings(environment="development").api_routes} == {
        "http://127.0.0.1:8080"
    }


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/api", "/api/nope", "/api/usersx/1", "/api/users/currentuser"])
async def test_an_api_path_the_client_is_sent_is_a_json_404(
    client: httpx.AsyncClient, fake: FakeApi, method: str, path: str
) -> None:
    """The edge sends the client every path that is no service's: an /api/ one among them is the
    API's 404 in its error shape, not the HTML page."""
    res = await client.request(method, path, headers={"cookie": "session=alice"})
    assert res.status_code == 404
    assert res.headers["content-type"] == "application/json"
    if method != "HEAD":
        assert res.json() == {"errors": [{"message": "Not Found"}]}
    assert fake.seen == []  # answered without asking the API anything


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
    res = await Browser(client).post(
        "/auth/signin", data={"email": email, "password": "password123"}
    )
    assert res.status_code == 429
    assert message in res.text
    assert f'value="{email}"' in res.text
    assert "<html>429" not in res.text


async def test_sign_in_never_redirects_off_site(client: httpx.AsyncClient) -> None:
    res = await Browser(client).post(
        "/auth/signin",
        data={"email": "alice@example.com", "password": "password123", "next": "//evil.test"},
    )
    assert res.headers["location"] == "/"


async def test_form_errors_keep_the_email_and_sit_next_to_their_field(
    client: httpx.AsyncClient,
) -> None:
    browser = Browser(client)
    res = await browser.post("/auth/signup", data={"email": "nope", "password": "password123"})
    assert res.status_code == 400
    assert 'id="email-error">Email must be valid' in res.text
    assert 'value="nope"' in res.text
    res = await browser.post("/auth/signin", data={"email": "a@b.co", "password": "x"})
    assert 'role="alert"' in res.text
    assert "Invalid credentials" in res.text


async def test_a_price_is_sent_with_two_decimals(client: httpx.AsyncClient, fake: FakeApi) -> None:
    alice = Browser(client, "alice")
    res = await alice.post("/tickets/new", data={"title": "Jazz", "price": "$1,250.5"})
    assert res.status_code == 303
    assert fake.seen[-1].content == b'{"title": "Jazz", "price": 1250.50}'
    res = await alice.post("/tickets/new", data={"title": "Jazz", "price": "1.999"})
    assert res.status_code == 400
    assert "Price must be in dollars and cents" in res.text


async def test_private_pages_ask_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/orders", "/tickets/new", f"/orders/{'1' * 24}"):
        res = await client.get(path)
        assert res.status_code == 303
        assert res.headers["location"].startswith("/auth/signin?next=/")


async def test_pages_go_back_and_forth_over_the_cursor(fake: FakeApi) -> None:
    app = create_app(
        SETTINGS.model_copy(update={"client_page_size": 4}),
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


# --- CSRF ---------------------------------------------------------------------------------------

OTHER_ID = "3" * 24
# Every state-changing form the pages have, with a body it would send.
FORMS = [
    ("/auth/signup", {"email": "mallory@example.com", "password": "password123"}),
    ("/auth/signin", {"email": "alice@example.com", "password": "password123"}),
    ("/auth/signout", {}),
    ("/tickets/new", {"title": "Forged", "price": "1"}),
    (f"/tickets/{TICKET['id']}/edit", {"title": "Forged", "price": "1"}),
    (f"/tickets/{TICKET['id']}/purchase", {}),
    (f"/orders/{ORDER['id']}/pay", {"token": "tok_visa"}),
    (f"/orders/{ORDER['id']}/cancel", {}),
]


def assert_refused(res: httpx.Response) -> None:
    assert res.status_code == 403
    assert "This form has expired" in res.text
    assert "Nothing was changed" in res.text
    assert "Traceback" not in res.text
    assert "csrf" not in res.text.split("<main", 1)[1].lower()  # no internals, just the message


@pytest.mark.parametrize(("path", "data"), FORMS)
async def test_a_form_from_another_site_is_refused_before_any_api_call(
    client: httpx.AsyncClient, fake: FakeApi, path: str, data: dict[str, str]
) -> None:
    alice = Browser(client, "session=alice")
    await alice.get("/")  # she has used the site: her CSRF cookie is set
    fake.seen.clear()
    # What a page elsewhere can make her browser send: her cookies, but no token of hers.
    forged = await client.post(path, data=data, headers={"cookie": alice.cookie})
    assert_refused(forged)
    wrong = await alice.post(path, data, token="not-a-token")
    assert_refused(wrong)
    assert fake.seen == []  # nothing asked of the API, so nothing written
    # The same form from her own page goes through.
    res = await alice.post(path, data)
    assert res.status_code != 403
    assert any(request.method != "GET" for request in fake.seen)


async def test_a_token_works_only_for_its_own_browser_and_session(
    client: httpx.AsyncClient, fake: FakeApi
) -> None:
    alice, mallory = Browser(client, "session=alice"), Browser(client, "session=mallory")
    token = await mallory.token()
    fake.seen.clear()
    # Mallory's token (another nonce, another session) in Alice's browser.
    assert_refused(await alice.post("/tickets/new", {"title": "x", "price": "1"}, token=token))
    # Even with Mallory's nonce planted in Alice's browser: the session differs.
    alice.nonce = mallory.nonce
    assert_refused(await alice.post("/tickets/new", {"title": "x", "price": "1"}, token=token))
    # A token from before signing in is not one for after it.
    anonymous = Browser(client)
    token = await anonymous.token()
    anonymous.session = "session=alice"
    assert_refused(await anonymous.post("/auth/signout", {}, token=token))
    # No CSRF cookie at all: refused too (sign-in forgery is refused like any other).
    res = await client.post(
        "/auth/signin",
        data={"email": "a@b.co", "password": "password123", "csrf_token": token},
        headers={"cookie": ""},
    )
    assert_refused(res)
    assert [r for r in fake.seen if r.method != "GET"] == []


async def test_a_token_expires_after_a_day(
    client: httpx.AsyncClient, fake: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = Browser(client, "session=alice")
    token = await alice.token()
    a_day_later = int(time.time()) + csrf.MAX_AGE_SECONDS + 5
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: a_day_later)
    fake.seen.clear()
    assert_refused(await alice.post("/auth/signout", {}, token=token))
    assert fake.seen == []


async def test_a_fetch_sends_the_token_as_a_header(client: httpx.AsyncClient) -> None:
    alice = Browser(client, "session=alice")
    token = await alice.token()
    res = await client.post(
        "/auth/signout", headers={"cookie": alice.cookie, "x-csrf-token": token}
    )
    assert res.status_code == 303


async def test_a_new_browser_gets_an_httponly_csrf_cookie_once(client: httpx.AsyncClient) -> None:
    res = await client.get("/", headers={"cookie": ""})
    (cookie,) = [c for c in res.headers.get_list("set-cookie") if c.startswith(CSRF_COOKIE)]
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "samesite=lax" in cookie.lower()
    nonce = res.cookies[CSRF_COOKIE]
    again = await client.get("/", headers={"cookie": f"{CSRF_COOKIE}={nonce}"})
    assert not any(c.startswith(CSRF_COOKIE) for c in again.headers.get_list("set-cookie"))


async def test_every_post_form_carries_the_token(client: httpx.AsyncClient) -> None:
    alice = Browser(client, "session=alice")
    pages = ["/", "/auth/signout", "/tickets/new", f"/tickets/{TICKET['id']}"]
    pages += [f"/tickets/{ALICES_TICKET['id']}/edit", f"/orders/{ORDER['id']}"]
    actions: set[str] = set()
    for page in pages:
        html = (await alice.get(page)).text
        # The page's own token (it carries a timestamp: each page has its own).
        (token,) = re.findall(r'<meta name="csrf-token" content="([^"]+)">', html)
        for form in re.findall(r'<form method="post".*?</form>', html, flags=re.DOTALL):
            assert f'name="csrf_token" value="{token}"' in form, form
            actions.add(re.findall(r'action="([^"]+)"', form)[0])
    anonymous = Browser(client)
    for page in ("/auth/signup", "/auth/signin"):
        html = (await anonymous.get(page)).text
        assert html.count('name="csrf_token"') == html.count('<form method="post"') == 1
    assert actions == {
        "/auth/signout",
        "/tickets/new",
        f"/tickets/{ALICES_TICKET['id']}/edit",
        f"/tickets/{TICKET['id']}/purchase",
        f"/orders/{ORDER['id']}/pay",
        f"/orders/{ORDER['id']}/cancel",
    }


async def test_signing_in_after_a_form_action_comes_back_to_its_page(
    client: httpx.AsyncClient,
) -> None:
    nobody = Browser(client)
    res = await nobody.post(f"/orders/{ORDER['id']}/pay", {"token": "tok_visa"})
    assert res.headers["location"] == f"/auth/signin?next=/orders/{ORDER['id']}"
    res = await nobody.post(f"/tickets/{TICKET['id']}/purchase", {})
    assert res.headers["location"] == f"/auth/signin?next=/tickets/{TICKET['id']}"


# --- paying: Stripe Elements or test mode -------------------------------------------------------


async def test_without_a_publishable_key_the_order_page_is_in_test_mode(
    client: httpx.AsyncClient,
) -> None:
    res = await Browser(client, "session=alice").get(f"/orders/{ORDER['id']}")
    assert res.status_code == 200
    assert "Test mode" in res.text
    assert 'value="tok_visa"' in res.text
    assert 'value="tok_chargeDeclined"' in res.text
    assert "stripe.com" not in res.text
    assert "data-stripe-key" not in res.text
    assert "stripe.com" not in res.headers["content-security-policy"]
    assert "script-src 'self';" in res.headers["content-security-policy"]


async def test_with_a_publishable_key_the_order_page_takes_the_card_with_stripe_elements(
    fake: FakeApi,
) -> None:
    settings = SETTINGS.model_copy(update={"stripe_publishable_key": "pk_test_123"})
    app = create_app(settings, transport=httpx.MockTransport(fake))
    async with running(app) as client:
        alice = Browser(client, "session=alice")
        res = await alice.get(f"/orders/{ORDER['id']}")
        home = await alice.get("/")
        fake.seen.clear()
        paid = await alice.post(f"/orders/{ORDER['id']}/pay", {"token": ""})
    assert res.status_code == 200
    assert '<script src="https://js.stripe.com/v3/" defer></script>' in res.text
    assert 'id="card-element"' in res.text
    assert 'data-stripe-key="pk_test_123"' in res.text
    assert 'name="token" value="" data-card-token' in res.text
    assert 'id="card-errors" role="alert"' in res.text  # Stripe's messages, next to the form
    assert "Test mode" not in res.text
    assert "tok_visa" not in res.text
    assert "tok_chargeDeclined" not in res.text
    policy = res.headers["content-security-policy"]
    assert "script-src 'self' https://js.stripe.com" in policy
    assert "frame-src https://js.stripe.com" in policy
    assert "connect-src 'self' https://api.stripe.com" in policy
    assert "js.stripe.com" not in home.text  # only the order page loads Stripe.js
    # No token from Stripe (say the script never loaded): asked again, nothing sent.
    assert paid.status_code == 400
    assert "Enter your card details" in paid.text
    assert not [r for r in fake.seen if r.url.path == "/api/payments"]


async def test_pages_say_where_scripts_may_come_from(client: httpx.AsyncClient) -> None:
    res = await client.get("/")
    policy = res.headers["content-security-policy"]
    for directive in ("default-src 'self'", "object-src 'none'", "frame-ancestors 'none'"):
        assert directive in policy
    assert res.headers["x-content-type-options"] == "nosniff"
