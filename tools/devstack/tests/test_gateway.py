from collections.abc import AsyncIterator

import httpx
import pytest

from ticketing_devstack.gateway import create_app
from ticketing_devstack.routes import ROUTES, route


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/users/signup", "auth"),
        ("/api/users", "auth"),
        ("/api/tickets", "tickets"),
        ("/api/tickets/abc", "tickets"),
        ("/api/orders/1", "orders"),
        ("/api/payments", "payments"),
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
