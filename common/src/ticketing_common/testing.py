"""Test helpers and fixtures shared by every member (a pytest plugin, via the pytest11 entry point).

Fixtures that need a real server start their own on a free port and stop it afterwards; nothing
depends on services that happen to run on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from bson import ObjectId

from ticketing_common.auth import issue_token
from ticketing_common.servers import (
    free_port,
    nats_args,
    nx_args,
    redis_args,
    stop_process_group,
    wait_port,
)
from ticketing_common.settings import ServiceSettings

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 5.0, interval: float = 0.01
) -> T:
    """Poll `check` until it returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
            last: BaseException | None = None
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            if last is not None:
                raise last
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


@dataclass
class ServerProcess:
    """A server started by a test: restartable on the same port and data, killable."""

    name: str
    args: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_port(self.port, timeout)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process_group(self.proc, sig)

    def restart(self) -> None:
        self.stop()
        self.start()


def nats_process(data_dir: Path, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    return ServerProcess(
        "nats", nats_args(port, data_dir), port, data_dir.parent / f"nats-{port}.log"
    )


def nx_process(data_dir: Path, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    return ServerProcess("mongo", nx_args(port, data_dir), port, data_dir.parent / f"nx-{port}.out")


def redis_process(data_dir: Path, port: int | None = None) -> ServerProcess:
    """A real redis-server with append-only persistence, as deployed."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    return ServerProcess(
        "redis", redis_args(port, data_dir), port, data_dir.parent / f"redis-{port}.log"
    )


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real nats-server with JetStream on a free port, its store in the test's tmp dir."""
    server = nats_process(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real redis-server with append-only persistence on a free port."""
    server = redis_process(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nx_mongo(tmp_path: Path) -> Iterator[ServerProcess]:
    """nx-27017, a MongoDB wire-protocol server on SQLite, on a free port."""
    server = nx_process(tmp_path / "mongo")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mongo() -> Any:
    """An in-memory Mongo (mongomock) with the async client API."""
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient(tz_aware=True)


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and give an HTTP client for it (https, so Secure cookies stick)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            yield client


def session_cookie(
    settings: ServiceSettings, *, user_id: str | None = None, email: str = ""
) -> dict[str, str]:
    """A signed-in user's cookie, as auth would issue it (other services' tests sign in so)."""
    user_id = user_id or str(ObjectId())
    email = email or f"{user_id}@example.com"
    return {settings.cookie_name: issue_token(user_id=user_id, email=email, settings=settings)}


async def started(bus: Any) -> Any:
    """Start a bus and, for a real one, wait until it is connected."""
    await bus.start()
    if hasattr(bus, "wait_connected"):
        await bus.wait_connected(10)
    return bus


async def published(bus: Any, subject: Any, count: int) -> list[Any]:
    """Wait until exactly `count` events of `subject` are on the in-memory bus (the outbox
    relay publishes in the background) and return them."""

    async def check() -> list[Any]:
        events: list[Any] = bus.published_on(subject)
        assert len(events) == count, events
        return events

    if count == 0:
        await bus.drain()
        assert bus.published_on(subject) == []
        return []
    return await eventually(check)
