import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ticketing_devstack.gateway import create_app
from ticketing_devstack.routes import ROUTES, route
from ticketing_testing.apps import running


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/users/signup", "auth"),
        ("/api/users", "auth"),
        ("/api/tickets", "tickets"),
        ("/api/tickets/abc", "tickets"),
        ("/api/orders/1", "orders"),
        ("/api/payments", "payments"),
        # Each service's documentation is under its prefix.
        ("/api/users/docs", "auth"),
        ("/api/tickets/openapi.json", "tickets"),
        ("/", "client"),
        ("/tickets/new", "client"),
        ("/api/usersx", "client"),  # a prefix is a path segment, not a string prefix
    ],
)
def test_routes(path: str, service: str) -> None:
    assert route(path) == service


def test_every_api_service_has_exactly_one_prefix() -> None:
    services = [s for _, s in ROUTES]
    assert len(services) == len(set(services))


seen: list[httpx.Request] = []


def upstream(request: httpx.Request) -> httpx.Response:
    seen.append(request)
    if request.url.host == "down":
        raise httpx.ConnectError("refused")
    headers = [("set-cookie", "a=1; Path=/"), ("set-cookie", "b=2; Path=/")]
    return httpx.Response(
        201, json={"host": request.url.host, "path": request.url.path}, headers=headers
    )


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    seen.clear()
    app = create_app(
        {"auth": "http://auth", "tickets": "http://tickets", "orders": "http://down"},
        transport=httpx.MockTransport(upstream),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


async def test_the_gateway_forwards_by_prefix_with_body_query_and_cookies(
    gateway: httpx.AsyncClient,
) -> None:
    gateway.cookies.set("session", "tok")
    res = await gateway.post("/api/tickets/x?limit=2", json={"title": "t"})
    assert res.status_code == 201
    assert res.json() == {"host": "tickets", "path": "/api/tickets/x"}
    assert res.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    request = seen[-1]
    assert request.url.query == b"limit=2"
    assert request.content == b'{"title":"t"}'
    assert "session=tok" in request.headers["cookie"]
    assert request.headers["x-forwarded-proto"] == "http"


async def test_a_service_that_is_down_is_a_502_in_the_error_shape(
    gateway: httpx.AsyncClient,
) -> None:
    res = await gateway.get("/api/orders")
    assert res.status_code == 502
    assert res.json() == {"errors": [{"message": "Service unavailable: orders"}]}


async def test_an_unconfigured_upstream_is_404(gateway: httpx.AsyncClient) -> None:
    res = await gateway.get("/api/payments")
    assert (res.status_code, res.json()) == (404, {"errors": [{"message": "Not Found"}]})


# --- sessions: the gateway keeps none ------------------------------------------------------------


class ByHost(httpx.AsyncBaseTransport):
    """Upstream services in process, picked by the host of the gateway's upstream URL."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


@pytest.fixture
async def services() -> AsyncIterator[httpx.AsyncBaseTransport]:
    """The real auth, tickets and orders apps (in-memory Mongo and bus), one session key."""
    from mongomock_motor import AsyncMongoMockClient

    from ticketing_auth.main import create_app as auth_app
    from ticketing_auth.settings import Settings as AuthSettings
    from ticketing_common.bus.memory import InMemoryBus
    from ticketing_orders.main import create_app as orders_app
    from ticketing_orders.settings import Settings as OrdersSettings
    from ticketing_tickets.main import create_app as tickets_app
    from ticketing_tickets.settings import Settings as TicketsSettings

    common = {"environment": "test", "jwt_key": "g" * 40, "cookie_secure": False}
    mongo = AsyncMongoMockClient(tz_aware=True)
    apps = {
        "auth": auth_app(AuthSettings(**common), mongo=mongo, bus=InMemoryBus("auth")),
        "tickets": tickets_app(TicketsSettings(**common), mongo=mongo, bus=InMemoryBus("tickets")),
        "orders": orders_app(OrdersSettings(**common), mongo=mongo, bus=InMemoryBus("orders")),
    }
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield ByHost(apps)


async def test_three_browsers_each_see_only_their_own_session(
    services: httpx.AsyncBaseTransport,
) -> None:
    app = create_app({s: f"http://{s}" for s in ("auth", "tickets", "orders")}, transport=services)

    def browser() -> httpx.AsyncClient:
        # Its own cookie jar, like a browser; all three share the one gateway.
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")

    async def whoami(client: httpx.AsyncClient) -> str | None:
        res = await client.get("/api/users/currentuser")
        assert res.status_code == 200, res.text
        user = res.json()["currentUser"]
        return None if user is None else str(user["email"])

    async def signup(client: httpx.AsyncClient, email: str) -> None:
        res = await client.post("/api/users/signup", json={"email": email, "password": "p" * 10})
        assert res.status_code == 201, res.text

    async def anonymous_is_refused(client: httpx.AsyncClient) -> None:
        assert await whoami(client) is None
        assert (
            await client.post("/api/tickets", json={"title": "t", "price": 5})
        ).status_code == 401
        assert (await client.get("/api/orders")).status_code == 401

    async with app.router.lifespan_context(app), browser() as anon, browser() as a, browser() as b:
        await anonymous_is_refused(anon)
        await signup(a, "a@example.com")
        await anonymous_is_refused(anon)
        await signup(b, "b@example.com")
        await anonymous_is_refused(anon)
        assert (await whoami(a), await whoami(b)) == ("a@example.com", "b@example.com")

        res = await a.post("/api/tickets", json={"title": "A's", "price": 5})
        assert res.status_code == 201
        ticket = res.json()
        a_id = (await a.get("/api/users/currentuser")).json()["currentUser"]["id"]
        assert ticket["userId"] == a_id
        # B and the anonymous browser cannot edit A's ticket.
        for other in (b, anon):
            res = await other.put(f"/api/tickets/{ticket['id']}", json={"title": "x", "price": 1})
            assert res.status_code == 401, res.text

        assert (await a.post("/api/users/signout", json={})).status_code == 200
        assert await whoami(a) is None
        assert await whoami(b) == "b@example.com"
        await anonymous_is_refused(anon)
        await anonymous_is_refused(a)


# --- stale pooled connections --------------------------------------------------------------------


class ClosingUpstream:
    """An HTTP/1.1 server that answers the first request on a connection (keep-alive) and, on
    a second request on the same connection, closes it without answering: the race a pooled
    connection loses when the upstream closes it just as the proxy reuses it."""

    def __init__(self) -> None:
        self.answered = 0
        self.dropped = 0
        self.server: asyncio.Server | None = None
        self.url = ""
        self.handlers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> "ClosingUpstream":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.wait_for(asyncio.gather(*self.handlers), 5)

    async def _read_request(self, reader: asyncio.StreamReader) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self.handlers.append(handler)
        try:
            await self._read_request(reader)
            self.answered += 1
            body = b'{"ok":true}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            await self._read_request(reader)
            self.dropped += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection itself
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def closing() -> AsyncIterator[ClosingUpstream]:
    async with ClosingUpstream() as closing:
        yield closing


@pytest.fixture
async def pooled(closing: ClosingUpstream) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway, tickets routed to `closing`, running."""
    async with running(create_app({"tickets": closing.url})) as gw:
        yield gw


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_idempotent_request_on_a_closed_pooled_connection_is_retried_once(
    pooled: httpx.AsyncClient, closing: ClosingUpstream, method: str
) -> None:
    for _ in range(3):
        res = await pooled.request(method, "/api/tickets/1")
        assert (res.status_code, res.json()) == (200, {"ok": True})
    # The second request went out on the pooled connection, which dropped it; it was sent again
    # on a new connection. (The third found the pool empty.)
    assert (closing.answered, closing.dropped) == (3, 1)


async def test_a_post_on_a_closed_pooled_connection_is_not_repeated(
    pooled: httpx.AsyncClient, closing: ClosingUpstream
) -> None:
    assert (await pooled.post("/api/tickets", json={})).status_code == 200
    # The upstream may have acted on it: a POST is not sent twice.
    res = await pooled.post("/api/tickets", json={})
    assert res.status_code == 502
    assert res.json() == {"errors": [{"message": "Service unavailable: tickets"}]}
    assert (closing.answered, closing.dropped) == (1, 1)


async def test_the_upstream_response_is_passed_on_unchanged() -> None:
    def compressed(request: httpx.Request) -> httpx.Response:
        import gzip

        return httpx.Response(
            200,
            content=gzip.compress(b'{"a":1}'),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )

    app = create_app({"auth": "http://auth"}, transport=httpx.MockTransport(compressed))
    async with running(app) as gw:
        res = await gw.get("/api/users/currentuser")
    assert res.headers["content-encoding"] == "gzip"
    assert res.json() == {"a": 1}  # decoded by the client, once
