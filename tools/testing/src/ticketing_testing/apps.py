"""A service app under test: run it, sign users in, read its answers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from bson import ObjectId
from fastapi import APIRouter, Request

from ticketing_common.auth import issue_token
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import TicketCreated, new_event
from ticketing_common.outbox import Outbox, OutboxRelay
from ticketing_common.service import Runtime
from ticketing_common.settings import ServiceSettings
from ticketing_testing.servers import free_port
from ticketing_testing.waiting import eventually

# Every test service signs sessions with this key (at least 32 bytes, as outside development).
TEST_JWT_KEY = "test-jwt-key-0123456789abcdef0123456789"


def settings_fixture(settings_type: type[ServiceSettings], **fields: Any) -> Any:
    """A conftest's `settings` fixture (`settings = settings_fixture(Settings)`): the service's
    settings in the test environment, signed with TEST_JWT_KEY, and `fields`; a test changes
    some with `@pytest.mark.parametrize("settings", [{field: value}], indirect=True)`."""

    @pytest.fixture(name="settings")
    def fixture(request: pytest.FixtureRequest) -> ServiceSettings:
        changed = getattr(request, "param", {})
        return settings_type(environment="test", jwt_key=TEST_JWT_KEY, **{**fields, **changed})

    return fixture


def app_fixture(create_app: Callable[..., Any]) -> Any:
    """A conftest's `app` fixture (`app = app_fixture(create_app)`): the service's app on the
    test's settings, Mongo (`mongo`) and bus (`bus`), not started (`client` starts it)."""

    @pytest.fixture(name="app")
    def fixture(settings: ServiceSettings, mongo: Any, bus: Any) -> Any:
        return create_app(settings, mongo=mongo, bus=bus)

    return fixture


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and give an HTTP client for it (https, so Secure cookies stick)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            yield client


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Run an app, its lifespan included, under uvicorn in this event loop on a free port of
    127.0.0.1, and give its base URL: for what only a real HTTP server shows (connections, the
    bytes on the wire)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, ws="none"
    )
    server = uvicorn.Server(config)
    serve = asyncio.create_task(server.serve())
    try:
        # A lifespan that fails to start ends `serve` without the server ever starting.
        await eventually(lambda: server.started or serve.done())
        assert server.started, f"the app did not start on port {port}"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serve


@contextlib.contextmanager
def serving_in_thread(app: Any, *, name: str, timeout: float = 15.0) -> Iterator[str]:
    """`serving` for a synchronous test (a browser driven by Playwright's sync API): the app
    under uvicorn in a thread of its own, on a free port of 127.0.0.1; its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"{name} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def session_cookie(
    settings: ServiceSettings, *, user_id: str | None = None, email: str = ""
) -> dict[str, str]:
    """A signed-in user's cookie, as auth would issue it (other services' tests sign in so)."""
    user_id = user_id or str(ObjectId())
    email = email or f"{user_id}@example.com"
    return {settings.cookie_name: issue_token(user_id=user_id, email=email, settings=settings)}


def cookie_header(settings: ServiceSettings, user_id: str | None = None) -> dict[str, str]:
    """Headers of a signed-in user (a new one unless `user_id` is given): a Cookie header per
    request rather than the client's jar, so one client can act as many users at once."""
    ((name, token),) = session_cookie(settings, user_id=user_id).items()
    return {"cookie": f"{name}={token}"}


def sign_in(client: httpx.AsyncClient, settings: ServiceSettings, user_id: str = "") -> str:
    """Make the client's next requests those of a user (a fresh one by default); its id."""
    user_id = user_id or str(ObjectId())
    client.cookies.clear()
    client.cookies.update(session_cookie(settings, user_id=user_id))
    return user_id


def only_error(response: httpx.Response) -> dict[str, str]:
    """The one error of an error answer (`{"errors": [error]}`)."""
    body = response.json()
    assert list(body) == ["errors"]
    assert len(body["errors"]) == 1, body
    error: dict[str, str] = body["errors"][0]
    return error


def assert_error_shape(response: httpx.Response) -> None:
    """Never a 5xx; an error is `{"errors": [{"message": str, "field"?: str}, ...]}`."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code < 400:
        return
    body = response.json()
    assert list(body) == ["errors"], body
    assert body["errors"], body
    for error in body["errors"]:
        assert isinstance(error["message"], str), body
        assert error["message"], body
        assert set(error) <= {"message", "field"}, body
        assert isinstance(error.get("field", ""), str), body


def selling_router(collection: str) -> APIRouter:
    """`POST /api/things`: stores a thing in `collection` with its ticket:created, through the
    outbox (for tests of what follows such a write: the relay, the bus, traces, metrics)."""
    router = APIRouter()

    @router.post("/api/things", status_code=201)
    async def sell(request: Request) -> dict[str, str]:
        runtime: Runtime[Any] = request.app.state.runtime
        thing_id = str(ObjectId())
        created = TicketCreated(id=thing_id, version=0, title="a", price=1.0, user_id="u")
        await runtime.outbox[collection].insert_one({"_id": thing_id}, new_event(created))
        return {"id": thing_id}

    return router


def outbox_on(db: Any, *collections: str) -> Outbox:
    """A service's writes without a running app: its relay, never started, publishes what a
    write kicks to a bus of its own (and sweeps `collections` when told)."""
    return Outbox(db, OutboxRelay(InMemoryBus("test"), db, list(collections)))
