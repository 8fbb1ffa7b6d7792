import asyncio
import contextlib
import gzip
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ticketing_devstack import gateway as gateway_module
from ticketing_devstack.gateway import create_app
from ticketing_devstack.routes import ROUTES, route
from ticketing_devstack.stack import gateway_command
from ticketing_testing.apps import running, serving
from ticketing_testing.servers import free_port, wait_port
from ticketing_testing.waiting import eventually


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


def test_the_web_client_calls_each_api_prefix_on_the_service_the_table_routes_it_to() -> None:
    """The client calls the services directly (CLIENT_AUTH_URL, ...): by the same table."""
    from ticketing_client.settings import Settings as ClientSettings

    urls = {
        f"client_{svc}_url": f"http://{svc}" for svc in ("auth", "tickets", "orders", "payments")
    }
    settings = ClientSettings.model_validate({"environment": "development", **urls})
    assert dict(settings.api_routes) == {
        prefix: f"http://{service}" for prefix, service in ROUTES if service != "client"
    }


@dataclass
class Received:
    """A request as an upstream service read it off the wire."""

    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> list[bytes]:
        return [value for key, value in self.headers if key == name.encode()]


def echo(service: str, seen: list[Received]) -> Starlette:
    """An upstream service: keeps every request it reads and answers 201 with its name, the path
    and two cookies."""

    async def answer(request: Request) -> Response:
        seen.append(
            Received(
                request.scope["raw_path"],
                request.scope["query_string"],
                request.headers.raw,
                await request.body(),
            )
        )
        res = JSONResponse({"service": service, "path": request.url.path}, status_code=201)
        res.raw_headers += [(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; Path=/")]
        return res

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", answer, methods=methods)])


def browser(app: Starlette, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client of the gateway with a cookie jar of its own, as a browser has, at `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://gw")


def by_name(url: str) -> str:
    # An upstream by name, as in the stack's table: aiohttp's own cookie jar keeps no cookie set
    # by an IP address, so only a name shows a gateway that keeps cookies.
    return url.replace("127.0.0.1", "localhost")


seen: list[Received] = []


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    """The gateway, running, before auth and tickets (real servers) and orders (down: nothing
    listens on its port)."""
    seen.clear()
    async with serving(echo("auth", seen)) as auth, serving(echo("tickets", seen)) as tickets:
        down = f"http://127.0.0.1:{free_port()}"
        app = create_app({"auth": by_name(auth), "tickets": by_name(tickets), "orders": down})
        async with app.router.lifespan_context(app), browser(app) as client:
            yield client


async def test_the_gateway_forwards_by_prefix_with_body_query_and_cookies(
    gateway: httpx.AsyncClient,
) -> None:
    gateway.cookies.set("session", "tok")
    res = await gateway.post("/api/tickets/x?limit=2", json={"title": "t"})
    assert res.status_code == 201
    assert res.json() == {"service": "tickets", "path": "/api/tickets/x"}
    assert res.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    request = seen[-1]
    assert request.query == b"limit=2"
    assert request.body == b'{"title":"t"}'
    assert request.header("cookie") == [b"session=tok"]
    assert request.header("host") == [b"gw"]
    assert request.header("x-forwarded-for") == [b"127.0.0.1"]
    assert request.header("x-forwarded-proto") == [b"http"]
    assert request.header("x-forwarded-host") == [b"gw"]


async def test_what_the_browser_says_forwarded_it_is_replaced_by_its_peers_address() -> None:
    """As a stock ingress-nginx: X-Forwarded-For is the TCP peer's address alone, whatever the
    browser wrote (the services believe the gateway, so a browser's own would be its address)."""
    forged = {
        "x-forwarded-for": "198.51.100.66",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "evil.test",
        "x-forwarded-port": "443",
        "x-real-ip": "198.51.100.66",
        "forwarded": "for=198.51.100.66",
    }
    seen.clear()
    async with serving(echo("auth", seen)) as auth:
        app = create_app({"auth": auth})
        async with app.router.lifespan_context(app), browser(app, "203.0.113.9") as at:
            assert (await at.get("/api/users/currentuser", headers=forged)).status_code == 201
    request = seen[-1]
    assert request.header("x-forwarded-for") == [b"203.0.113.9"]
    assert request.header("x-forwarded-proto") == [b"http"]
    assert request.header("x-forwarded-host") == [b"gw"]
    for name in ("x-forwarded-port", "x-real-ip", "forwarded"):
        assert request.header(name) == [], name


async def test_path_query_and_header_bytes_reach_the_service_as_the_browser_sent_them(
    gateway: httpx.AsyncClient,
) -> None:
    target = "/api/users/a%2Fb%20c/%7e//d?q=a%20b+c&x=%7E&&flag"
    # Beyond ASCII: UTF-8, as browsers send it. A header that is not UTF-8 is read as Latin-1:
    # aiohttp writes text, as UTF-8, so it arrives re-encoded rather than failing the request.
    headers = {"x-name": "Zoë".encode(), "x-latin": b"caf\xe9"}
    assert (await gateway.get(target, headers=headers)).status_code == 201
    request = seen[-1]
    assert request.raw_path == b"/api/users/a%2Fb%20c/%7e//d"
    assert request.query == b"q=a%20b+c&x=%7E&&flag"
    assert request.header("x-name") == ["Zoë".encode()]
    assert request.header("x-latin") == ["café".encode()]


async def test_hop_by_hop_headers_stay_and_the_gateway_adds_none_of_its_own(
    gateway: httpx.AsyncClient,
) -> None:
    # What httpx would add: the gateway must add none of it in the browser's place.
    for name in ("user-agent", "accept", "accept-encoding"):
        del gateway.headers[name]
    headers = {
        "connection": "keep-alive, x-per-hop",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "x-per-hop": "1",
        "x-kept": "2",
    }
    assert (await gateway.post("/api/users", content=b"raw", headers=headers)).status_code == 201
    request = seen[-1]
    assert [key for key, _ in request.headers] == [
        b"host",
        b"x-kept",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"content-length",
    ]
    assert (request.header("content-length"), request.body) == ([b"3"], b"raw")


async def test_a_cookie_a_service_sets_is_never_sent_by_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    assert (await gateway.get("/api/users/currentuser")).headers.get_list("set-cookie")
    gateway.cookies.clear()  # the browser drops them: the gateway must have kept none
    assert (await gateway.get("/api/users/currentuser")).status_code == 201
    assert seen[-1].header("cookie") == []


async def test_a_service_that_is_down_is_a_502_in_the_error_shape(
    gateway: httpx.AsyncClient,
) -> None:
    res = await gateway.get("/api/orders")
    assert res.status_code == 502
    assert res.json() == {"errors": [{"message": "Service unavailable: orders"}]}


async def test_an_unconfigured_upstream_is_404(gateway: httpx.AsyncClient) -> None:
    res = await gateway.get("/api/payments")
    assert (res.status_code, res.json()) == (404, {"errors": [{"message": "Not Found"}]})


# --- the address the services count: the peer's, never the browser's own say ----------------


# A browser under `make up` is at 127.0.0.1, an address the services trust as a proxy (the
# gateway's): an appended chain was read past it, to whatever the browser wrote.
@pytest.mark.parametrize("address", ["127.0.0.1", "203.0.113.9"])
async def test_a_forged_x_forwarded_for_does_not_escape_the_per_address_sign_in_limit(
    address: str,
) -> None:
    """The real auth (its limits counted in process) behind the gateway: failed sign-ins, each on
    another email and claiming another address, all count against the one browser's."""
    from mongomock_motor import AsyncMongoMockClient

    from ticketing_auth.main import create_app as auth_app
    from ticketing_auth.settings import Settings as AuthSettings
    from ticketing_common.bus.memory import InMemoryBus

    per_address = 3
    auth = auth_app(
        AuthSettings(
            environment="test",
            jwt_key="g" * 40,
            redis_url="memory://",
            rate_limit_signin_per_address=f"{per_address}/minute",
        ),
        mongo=AsyncMongoMockClient(tz_aware=True),
        bus=InMemoryBus("auth"),
    )
    async with serving(auth) as url:
        app = create_app({"auth": url})
        async with app.router.lifespan_context(app), browser(app, address) as guesser:
            statuses = [
                (
                    await guesser.post(
                        "/api/users/signin",
                        json={"email": f"guess{n}@example.com", "password": "wrong-password"},
                        headers={"x-forwarded-for": f"198.51.100.{n}"},
                    )
                ).status_code
                for n in range(per_address + 2)
            ]
    assert 429 not in statuses[:per_address], statuses
    assert statuses[per_address:] == [429, 429], statuses


@pytest.mark.connected
async def test_the_gateway_process_passes_on_its_peers_address_not_the_browsers_say(
    tmp_path: Path,
) -> None:
    """The gateway as `make up` runs it (its own uvicorn process): a browser at 127.0.0.1 that
    sends X-Forwarded-For is still counted at 127.0.0.1. (uvicorn believes X-Forwarded-For from
    127.0.0.1 by default: the browser's say reached the service as its address.)"""
    received: list[Received] = []
    async with serving(echo("auth", received)) as auth:
        port = free_port()
        env = {**os.environ, "GATEWAY_UPSTREAMS": json.dumps({"auth": auth})}
        with (tmp_path / "gateway.log").open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *gateway_command(sys.executable, port), env=env, stdout=log, stderr=log
            )
        try:
            await asyncio.to_thread(wait_port, port, 20)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                res = await http.post(
                    "/api/users/signin",
                    json={},
                    headers={"x-forwarded-for": "198.51.100.7", "x-real-ip": "198.51.100.8"},
                )
            assert res.status_code == 201, res.text
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
    (request,) = received
    assert request.header("x-forwarded-for") == [b"127.0.0.1"]
    assert request.header("x-real-ip") == []


async def test_an_unknown_api_path_is_a_json_404_through_the_gateway() -> None:
    """The gateway (as the Ingress) sends a path that is no service's to the web client, the real
    one here: an /api/ path is the API's 404 in its error shape, not the client's HTML page."""
    from ticketing_client.main import create_app as client_app
    from ticketing_client.settings import Settings as ClientSettings

    nowhere = f"http://127.0.0.1:{free_port()}"  # its pages find the API down: not asked here
    settings = ClientSettings(
        environment="test",
        client_csrf_key="c" * 40,
        client_auth_url=nowhere,
        client_tickets_url=nowhere,
        client_orders_url=nowhere,
        client_payments_url=nowhere,
    )
    client = client_app(settings)
    async with serving(client) as url, running(create_app({"client": url})) as gw:
        for method, path in [
            ("GET", "/api/nope"),
            ("POST", "/api/nope/1"),
            ("DELETE", "/api/usersx"),  # a prefix is whole segments: not auth's
            ("GET", "/api"),
        ]:
            res = await gw.request(method, path)
            assert res.status_code == 404, (method, path)
            assert res.json() == {"errors": [{"message": "Not Found"}]}, (method, path)
        head = await gw.head("/api/nope")
        assert (head.status_code, head.headers["content-type"]) == (404, "application/json")
        # Not every path: a page is still the client's.
        assert "text/html" in (await gw.get("/nope")).headers["content-type"]


# --- sessions: the gateway keeps none ------------------------------------------------------------


@pytest.fixture
async def services() -> AsyncIterator[dict[str, str]]:
    """The real auth, tickets and orders apps (in-memory Mongo and bus, one session key) on real
    servers: their base URLs."""
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
        # Its sign-up limits counted in the process, not in a Redis other runs count in too.
        "auth": auth_app(
            AuthSettings(**common, redis_url="memory://"), mongo=mongo, bus=InMemoryBus("auth")
        ),
        "tickets": tickets_app(TicketsSettings(**common), mongo=mongo, bus=InMemoryBus("tickets")),
        "orders": orders_app(OrdersSettings(**common), mongo=mongo, bus=InMemoryBus("orders")),
    }
    async with contextlib.AsyncExitStack() as stack:
        yield {s: by_name(await stack.enter_async_context(serving(app))) for s, app in apps.items()}


async def test_three_browsers_each_see_only_their_own_session(services: dict[str, str]) -> None:
    app = create_app(services)

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

    # Each with its own cookie jar; all three share the one gateway.
    lifespan = app.router.lifespan_context(app)
    async with lifespan, browser(app) as anon, browser(app) as a, browser(app) as b:
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
        self.hung_up = 0  # connections the client closed itself, waiting for no answer
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
            self.hung_up += 1
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


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
async def test_a_safe_request_on_a_closed_pooled_connection_is_retried_once(
    pooled: httpx.AsyncClient, closing: ClosingUpstream, method: str
) -> None:
    for _ in range(3):
        res = await pooled.request(method, "/api/tickets/1")
        assert (res.status_code, res.json()) == (200, {"ok": True})
    # The second request went out on the pooled connection, which dropped it; it was sent again
    # on a new connection. (The third found the pool empty.)
    assert (closing.answered, closing.dropped) == (3, 1)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_an_unsafe_request_on_a_closed_pooled_connection_is_not_repeated(
    pooled: httpx.AsyncClient, closing: ClosingUpstream, method: str
) -> None:
    assert (await pooled.request(method, "/api/tickets/1", json={})).status_code == 200
    # The upstream may have acted on it: it is not sent twice. A PUT is idempotent by the RFC,
    # but a ticket edit sent twice bumps the version twice, and its second answer can be a 400.
    res = await pooled.request(method, "/api/tickets/1", json={})
    assert res.status_code == 502
    assert res.json() == {"errors": [{"message": "Service unavailable: tickets"}]}
    assert (closing.answered, closing.dropped) == (1, 1)


async def test_a_retry_is_one_and_on_a_new_connection_however_many_pooled_ones_are_stale(
    pooled: httpx.AsyncClient, closing: ClosingUpstream
) -> None:
    # Two at once: two connections, both back in the pool afterwards, both stale.
    for res in await asyncio.gather(*(pooled.get("/api/tickets/1") for _ in range(2))):
        assert res.status_code == 200
    assert (len(closing.handlers), closing.answered) == (2, 2)
    assert (await pooled.get("/api/tickets/1")).status_code == 200
    # The first pooled connection dropped it; the retry went out on a third, not on the second.
    assert (len(closing.handlers), closing.answered, closing.dropped) == (3, 3, 1)


async def test_an_idle_pooled_connection_is_closed_after_the_keepalive_expiry(
    closing: ClosingUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "KEEPALIVE_EXPIRY", 0.2)
    async with running(create_app({"tickets": closing.url})) as gw:
        assert (await gw.get("/api/tickets/1")).status_code == 200
        # Closed by the gateway, idle: no request was ever sent on it again.
        await eventually(lambda: closing.hung_up == 1)
        assert (await gw.get("/api/tickets/1")).status_code == 200
    assert (len(closing.handlers), closing.answered, closing.dropped) == (2, 2, 0)


async def test_a_service_that_does_not_answer_in_time_is_a_502(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the gateway gives up and closes the connection
        writer.close()

    monkeypatch.setattr(gateway_module, "TIMEOUT", aiohttp.ClientTimeout(total=0.3))
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server, running(create_app({"tickets": url})) as gw:
        res = await gw.get("/api/tickets")
    assert (res.status_code, res.json()) == (
        502,
        {"errors": [{"message": "Service unavailable: tickets"}]},
    )


async def compressed(_: Request) -> Response:
    return Response(
        gzip.compress(b'{"a":1}'),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )


async def redirect(_: Request) -> Response:
    return RedirectResponse("/api/users/currentuser", status_code=303)


async def test_the_upstream_response_is_passed_on_unchanged() -> None:
    upstream = Starlette(
        routes=[Route("/api/users/currentuser", compressed), Route("/api/users/away", redirect)]
    )
    async with serving(upstream) as auth, running(create_app({"auth": auth})) as gw:
        res = await gw.get("/api/users/currentuser")
        # A redirect is the browser's to follow.
        away = await gw.get("/api/users/away")
    assert res.headers["content-encoding"] == "gzip"
    assert res.json() == {"a": 1}  # decoded by the client, once
    assert (away.status_code, away.headers["location"]) == (303, "/api/users/currentuser")
