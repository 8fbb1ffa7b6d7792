"""Whose address a sign-in counts against, through the client: the browser's, as the edge saw it.

The cluster in process: browsers at public addresses reach an edge that replaces X-Forwarded-For
with its peer's address (as ingress-nginx does, and the local gateway); the edge routes pages to
the client and the API to the real auth service (limits counted in process). The client calls
auth from its own pod address. Both the edge and the client are in the pods' network, the one
FORWARDED_ALLOW_IPS the client and auth believe.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from mongomock_motor import AsyncMongoMockClient
from starlette.types import ASGIApp, Receive, Scope, Send

from ticketing_auth.main import create_app as auth_app
from ticketing_auth.settings import Settings as AuthSettings
from ticketing_client.main import create_app as client_app
from ticketing_client.settings import Settings
from ticketing_common.bus.memory import InMemoryBus
from ticketing_testing.apps import TEST_JWT_KEY

PODS = "10.0.0.0/8"
EDGE, CLIENT_POD = "10.0.0.2", "10.0.0.9"
OWNER, ATTACKER = "203.0.113.1", "203.0.113.2"
PER_ADDRESS = 3  # failed sign-ins an address may make a minute


def replacing_edge(pages: ASGIApp, api: ASGIApp) -> ASGIApp:
    """An edge as ingress-nginx is one: `/api/` to the API, the rest to the web client; its own
    X-Forwarded-For (its peer's address) replaces any the request came with; it calls upstreams
    from its own address."""

    async def edge(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        peer = scope["client"][0]
        headers = [(k, v) for k, v in scope["headers"] if k != b"x-forwarded-for"]
        headers.append((b"x-forwarded-for", peer.encode()))
        upstream = api if scope["path"].startswith("/api/") else pages
        await upstream({**scope, "headers": headers, "client": (EDGE, 40000)}, receive, send)

    return edge


class ByHost(httpx.AsyncBaseTransport):
    """The client pod's network: each host name to its app, called from the pod's address."""

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self.hosts = {
            host: httpx.ASGITransport(app=app, client=(CLIENT_POD, 50000))
            for host, app in apps.items()
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.hosts[request.url.host].handle_async_request(request)


@pytest.fixture
async def browsers() -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The owner's browser and the attacker's, each at its own address, on the edge."""
    auth = auth_app(
        AuthSettings(
            environment="test",
            jwt_key=TEST_JWT_KEY,
            redis_url="memory://",
            rate_limit_signin_per_address=f"{PER_ADDRESS}/minute",
            forwarded_allow_ips=PODS,
        ),
        mongo=AsyncMongoMockClient(tz_aware=True),
        bus=InMemoryBus("auth"),
    )
    settings = Settings(
        environment="test",
        client_csrf_key="test-csrf-key-0123456789abcdef0123456789",
        # CLIENT_API_URL, the edge's in-cluster address, was the client's way to the API before
        # it called each service: a client that took it again would fail here.
        client_api_url="http://edge.cluster",
        client_auth_url="http://auth-srv:8000",
        forwarded_allow_ips=PODS,
    )
    edge_of_api = replacing_edge(pages=auth, api=auth)  # the client's way back in, if it took it
    client = client_app(settings, transport=ByHost({"auth-srv": auth, "edge.cluster": edge_of_api}))
    edge = replacing_edge(pages=client, api=auth)
    async with auth.router.lifespan_context(auth), client.router.lifespan_context(client):
        at = {
            name: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=edge, client=(address, 5000)),
                base_url="https://ticketing.test",
            )
            for name, address in (("owner", OWNER), ("attacker", ATTACKER))
        }
        try:
            yield at
        finally:
            for browser in at.values():
                await browser.aclose()


async def sign_in(browser: httpx.AsyncClient, email: str, *, forged: str = "") -> int:
    """A sign-in from the client's form (with its CSRF token): the page's status."""
    page = await browser.get("/auth/signin")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match, page.text
    form = {"email": email, "password": "wrong-password", "csrf_token": match.group(1)}
    headers = {"x-forwarded-for": forged} if forged else {}
    res = await browser.post("/auth/signin", data=form, headers=headers)
    return res.status_code


async def test_two_browsers_signing_in_through_the_client_count_against_their_own_addresses(
    browsers: dict[str, httpx.AsyncClient],
) -> None:
    attacker, owner = browsers["attacker"], browsers["owner"]
    # The attacker's guesses, each claiming another address: all counted against its own.
    tries = [
        await sign_in(attacker, f"guess{n}@example.com", forged=f"198.51.100.{n}")
        for n in range(PER_ADDRESS + 1)
    ]
    assert tries[:PER_ADDRESS] == [400] * PER_ADDRESS
    assert tries[PER_ADDRESS] == 429
    # The owner, at its own address, is not held back by them.
    assert await sign_in(owner, "owner@example.com") == 400
