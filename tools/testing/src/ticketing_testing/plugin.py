"""The fixtures every member's tests share (a pytest plugin: the `pytest11` entry point).

- Servers, real processes on free ports, stopped afterwards: `nats_server`, `redis_server`,
  `nx_mongo` (nx-27017).
- Mongo: `mongo` is the in-memory one; parametrized indirectly with `EVERY_MONGO` a module runs
  on nx-27017 too (`[NX]`: only there), connected as a service connects, `nx_mongo` its server.
  `any_mongo` is always both.
- A service under test: its conftest provides `settings` and `app` (`settings_fixture` and
  `app_fixture` in `ticketing_testing.apps` make them); from them come `bus` (in-memory, the
  service's name), `db`, `client` (the app running, over HTTP), `runtime`, `sign_in` and
  `user_headers`. A conftest or a test module overrides any of them.
- Stripe: `stripe_server`, the fake on a free port (one per worker), and `fake_stripe`, the same
  with its state reset for the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.service import Runtime
from ticketing_common.settings import ServiceSettings
from ticketing_fakestripe import FakeStripeServer
from ticketing_testing import apps
from ticketing_testing.mongo import EVERY_MONGO, IN_MEMORY, in_memory_mongo, nx_mongo_client
from ticketing_testing.servers import ServerProcess, nats_process, nx_process, redis_process

SignIn = Callable[..., str]
UserHeaders = Callable[..., dict[str, str]]

# --- servers ---------------------------------------------------------------------------------


def _serve(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real nats-server with JetStream on a free port, its store in the test's tmp dir."""
    yield from _serve(nats_process(tmp_path / "nats"))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real redis-server with append-only persistence on a free port."""
    yield from _serve(redis_process(tmp_path / "redis"))


@pytest.fixture
def nx_mongo(tmp_path: Path) -> Iterator[ServerProcess]:
    """nx-27017, a MongoDB wire-protocol server on SQLite, on a free port."""
    yield from _serve(nx_process(tmp_path / "mongo"))


# --- Mongo -----------------------------------------------------------------------------------


async def _mongo(request: pytest.FixtureRequest, kind: str) -> AsyncIterator[Any]:
    if kind == IN_MEMORY:
        yield in_memory_mongo()
        return
    async with nx_mongo_client(request.getfixturevalue("nx_mongo")) as client:
        yield client


@pytest.fixture
async def mongo(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The in-memory Mongo, unless parametrized (indirectly) with another of `EVERY_MONGO`:
    then `nx_mongo` is its server."""
    async for client in _mongo(request, getattr(request, "param", IN_MEMORY)):
        yield client


@pytest.fixture(params=EVERY_MONGO)
async def any_mongo(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A Mongo client on the in-memory Mongo and on nx-27017 through the real driver."""
    async for client in _mongo(request, request.param):
        yield client


# --- a service under test (its conftest provides `settings` and `app`) -----------------------


@pytest.fixture
def bus(settings: ServiceSettings) -> InMemoryBus:
    return InMemoryBus(settings.service_name)


@pytest.fixture
def db(mongo: Any, settings: ServiceSettings) -> Any:
    return mongo[settings.mongo_db]


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with apps.running(app) as c:
        yield c


@pytest.fixture
def runtime(app: FastAPI, client: httpx.AsyncClient) -> Runtime[Any]:
    """The running app's runtime (the `client` fixture has started its lifespan)."""
    rt: Runtime[Any] = app.state.runtime
    return rt


@pytest.fixture
def sign_in(client: httpx.AsyncClient, settings: ServiceSettings) -> SignIn:
    """Make the client's next requests those of a user (a fresh one by default); its id."""

    def sign_in(user_id: str = "") -> str:
        return apps.sign_in(client, settings, user_id)

    return sign_in


@pytest.fixture
def user_headers(settings: ServiceSettings) -> UserHeaders:
    """Headers of a signed-in user (a new one unless `user_id` is given), per request."""

    def make(user_id: str | None = None) -> dict[str, str]:
        return apps.cookie_header(settings, user_id)

    return make


# --- Stripe ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[FakeStripeServer]:
    """The fake Stripe on a free loopback port, once per worker (reset by `fake_stripe`)."""
    with FakeStripeServer() as server:
        yield server


@pytest.fixture
def fake_stripe(stripe_server: FakeStripeServer) -> FakeStripeServer:
    stripe_server.state.reset()
    return stripe_server
