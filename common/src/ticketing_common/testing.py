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


@pytest.fixture(params=["mongomock", pytest.param("nx", marks=pytest.mark.connected)])
async def any_mongo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A Mongo client on the in-memory Mongo and on nx-27017 through the real driver (which
    encodes every query and document as BSON, as production does)."""
    if request.param == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        yield AsyncMongoMockClient(tz_aware=True)
        return
    from pymongo import AsyncMongoClient

    server = nx_process(tmp_path / "mongo")
    server.start()
    client: AsyncMongoClient[Any] = AsyncMongoClient(f"mongodb://{server.url}", tz_aware=True)
    try:
        yield client
    finally:
        await client.close()
        server.stop()


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


# --- hostile input -------------------------------------------------------------------------------

# Strings that have broken services: a lone surrogate (valid JSON, not encodable as UTF-8), NUL
# and other controls, Mongo operators as text, and values that are valid so the request gets
# past validation and reaches the database and the password hasher.
NASTY_TEXT = [
    "x\ud800@example.com",
    "\udfff",
    "a\ud83d",
    "\x00",
    "a\x00b@example.com",
    "line\nbreak",
    "\u202etxet",
    "$gt",
    "",
    " ",
    "a@b.co",
    "password123",
    "Jazz night",
    "tok_visa",
    "tok_chargeDeclined",
    "pm_card_visa",
    "65f000000000000000000000",
    "x" * 5000,
]
OPERATORS = ['{"$gt": ""}', '{"$ne": null}', '{"$where": "sleep(1000)"}', '{"$regex": ".*"}']


def hostile_json(extra_text: list[str] | None = None) -> Any:
    """A hypothesis strategy of JSON *texts* (str): every JSON type, surrogates and control
    characters, numbers no float holds, deep nesting, operator objects. Texts, not values, so
    numbers Python refuses to print (5,000 digits) are sent as they would arrive."""
    import json

    from hypothesis import strategies as st

    # exclude_categories=() lets lone surrogates (category Cs) in; the default leaves them out.
    text = st.text(st.characters(exclude_categories=()), max_size=30) | st.sampled_from(
        NASTY_TEXT + (extra_text or [])
    )
    scalars = st.one_of(
        st.just("null"),
        st.sampled_from(["true", "false"]),
        st.integers().map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
        st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-0", "0.001"]),
        st.integers(20, 6000).map(lambda n: "9" * n),
        text.map(json.dumps),
        st.sampled_from(OPERATORS),
        st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
        st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
            | st.dictionaries(text.map(json.dumps), inner, max_size=3).map(
                lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}"
            )
        ),
        max_leaves=6,
    )


# Characters spliced into otherwise valid text: it must still be refused cleanly, or kept intact.
HOSTILE_CHARACTERS = [
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\x00",
    "\x1f",
    "\x7f",
    "\u202e",
    "\ufeff",
]


def hostile_bodies(valid: dict[str, str]) -> Any:
    """Request bodies (bytes) for a route whose valid body is `valid` (field -> JSON text).

    Mostly one field at a time made hostile while the others stay valid, so the bad value gets
    as far as it can (the database, the password hasher, Stripe); also several at once, unknown
    and operator keys, and bodies that are not an object, not JSON or not UTF-8.
    """
    import json

    from hypothesis import strategies as st

    hostile = hostile_json()

    def value_for(field: str) -> Any:
        good = json.loads(valid.get(field, "null"))
        if not isinstance(good, str):
            return hostile
        spliced = st.builds(
            lambda c, i: json.dumps(good[:i] + c + good[i:]),
            st.sampled_from(HOSTILE_CHARACTERS) | st.characters(exclude_categories=()),
            st.integers(0, len(good)),
        )
        return spliced | hostile

    def render(members: dict[str, str]) -> bytes:
        return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members.items()) + "}").encode()

    one_bad = st.sampled_from(sorted(valid)).flatmap(
        lambda f: value_for(f).map(lambda v: {**valid, f: v})
    )
    any_bad = st.fixed_dictionaries(
        {}, optional={f: value_for(f) for f in [*valid, "$where", "_id"]}
    )
    # Not JSON at all, or not UTF-8 (a raw encoded surrogate, a stray byte).
    broken = st.sampled_from([b"", b"{", b"nul", b'{"a":1}}', b"\xff\xfe", b'{"x":"\xed\xa0\x80"}'])
    return st.one_of(
        one_bad.map(render),
        one_bad.map(render),
        any_bad.map(render),
        hostile.map(str.encode),
        broken,
    )


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
