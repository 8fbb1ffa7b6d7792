"""The limits (limits.py): a body over the size limit is a 413, whether announced or streamed;
at most so many requests are served at once, the rest wait in line or, once it is full, get a
503."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from ticketing_common.bus import InMemoryBus
from ticketing_common.limits import ConcurrencyLimit, Line
from ticketing_common.service import Runtime, ServiceSpec, create_service_app
from ticketing_common.settings import ServiceSettings
from ticketing_testing.apps import running
from ticketing_testing.waiting import eventually


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/things", json={"title": "x" * 1_000_000, "price": 1})
    assert res.status_code == 413
    assert res.json() == {"errors": [{"message": "Request body too large"}]}


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1000

    res = await client.post(
        "/api/things", content=chunks(), headers={"content-type": "application/json"}
    )
    assert res.status_code == 413


# --- requests served at once (ConcurrencyLimit) ---------------------------------------------------


class Gate:
    """A route's requests held until the test opens the gate; who is inside, and in what order
    they came in."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.inside = 0
        self.most_inside = 0
        self.entered: list[int] = []
        # The app's limit (None without one), to see who waits in line.
        self.line: ConcurrencyLimit | None = None


@contextlib.asynccontextmanager
async def gated(
    settings: ServiceSettings,
    mongo: Any,
    bus: InMemoryBus,
    gate: Gate,
    lines: Sequence[Line] = (),
) -> AsyncIterator[httpx.AsyncClient]:
    """The service app with a route held at `gate` (and a quick one), running, with `lines`;
    the gate opens on the way out whatever happened, so a failing test does not leave requests
    hanging."""
    router = APIRouter(prefix="/api/things")

    @router.get("/quick")
    async def quick() -> dict[str, int]:
        return {}

    @router.get("/held/{n}")
    async def held(n: int) -> dict[str, int]:
        gate.inside += 1
        gate.most_inside = max(gate.most_inside, gate.inside)
        gate.entered.append(n)
        try:
            await gate.open.wait()
        finally:
            gate.inside -= 1
        return {"n": n}

    spec: ServiceSpec[ServiceSettings, Runtime[ServiceSettings]]
    spec = ServiceSpec(name="things", routers=[router], lines=lambda _: lines)
    app = create_service_app(spec, settings, mongo=mongo, bus=bus)
    async with running(app) as client:
        try:
            await client.get("/healthz")  # Starlette builds the middleware on the first request
            node: object = app.middleware_stack
            while not isinstance(node, ConcurrencyLimit) and node is not None:
                node = getattr(node, "app", None)
            gate.line = node
            yield client
        finally:
            gate.open.set()


@contextlib.asynccontextmanager
async def one_held(
    settings: ServiceSettings, mongo: Any, bus: InMemoryBus, *, queue: int
) -> AsyncIterator[tuple[httpx.AsyncClient, Gate, asyncio.Task[httpx.Response]]]:
    """The app serving one request at once with `queue` places in line, and a request let in
    and held at its gate."""
    gate = Gate()
    settings = limited(settings, http_concurrency=1, http_queue=queue)
    async with gated(settings, mongo, bus, gate) as client:
        held = asyncio.create_task(client.get("/api/things/held/0"))
        await eventually(lambda: gate.inside == 1)
        yield client, gate, held


async def waiting_in_line(client: httpx.AsyncClient, gate: Gate, n: int) -> asyncio.Task[Any]:
    """Request `n`, once it waits in line."""
    assert gate.line is not None
    before = gate.line.waiting
    task = asyncio.create_task(client.get(f"/api/things/held/{n}"))
    await eventually(lambda: gate.line is not None and gate.line.waiting == before + 1)
    return task


def limited(settings: ServiceSettings, **fields: Any) -> ServiceSettings:
    return settings.model_copy(update=fields)


def _arrived(gate: Gate, count: int) -> bool:
    """Whether `count` requests were let in or wait in line."""
    return gate.inside + (gate.line.waiting if gate.line else 0) >= count


async def _in_turn(
    client: httpx.AsyncClient, gate: Gate, count: int
) -> list[asyncio.Task[httpx.Response]]:
    """`count` requests sent one after another, each let in or waiting in line before the next
    is sent."""
    tasks = []
    for n in range(count):
        tasks.append(asyncio.create_task(client.get(f"/api/things/held/{n}")))
        await eventually(partial(_arrived, gate, n + 1))
    return tasks


@pytest.mark.parametrize(("limit", "sent", "let_in"), [(2, 6, 2), (0, 20, 20)])
async def test_at_most_the_limit_is_served_at_once_and_the_rest_in_arrival_order(
    settings: ServiceSettings, mongo: Any, bus: InMemoryBus, limit: int, sent: int, let_in: int
) -> None:
    """A limit of 0 is none."""
    gate = Gate()
    settings = limited(settings, http_concurrency=limit)
    async with gated(settings, mongo, bus, gate) as client:
        tasks = await _in_turn(client, gate, sent)
        assert gate.inside == let_in
        assert gate.entered == list(range(let_in))
        gate.open.set()
        answers = await asyncio.gather(*tasks)
    assert [r.status_code for r in answers] == [200] * sent
    assert gate.most_inside == let_in
    assert gate.entered == list(range(sent))


async def test_a_full_line_is_refused_at_once_with_a_503_and_retry_after(
    settings: ServiceSettings, mongo: Any, bus: InMemoryBus
) -> None:
    gate = Gate()
    async with gated(
        limited(settings, http_concurrency=1, http_queue=2), mongo, bus, gate
    ) as client:
        tasks = await _in_turn(client, gate, 3)  # one served, two waiting
        await eventually(lambda: gate.inside == 1)
        refused = await asyncio.wait_for(client.get("/api/things/held/3"), 5)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json() == {"errors": [{"message": "Service busy, try again"}]}
        gate.open.set()
        answers = await asyncio.gather(*tasks)
        assert [r.status_code for r in answers] == [200] * 3
        # The line is free again.
        assert (await client.get("/api/things/held/4")).status_code == 200
    assert gate.entered == [0, 1, 2, 4]


async def test_the_probes_and_the_scrape_never_wait(
    settings: ServiceSettings, mongo: Any, bus: InMemoryBus
) -> None:
    async with one_held(settings, mongo, bus, queue=0) as (client, gate, held):
        refused = await asyncio.wait_for(client.get("/api/things/held/1"), 5)
        assert refused.status_code == 503
        for path in ("/healthz", "/readyz", "/metrics"):
            answer = await asyncio.wait_for(client.get(path), 5)
            assert answer.status_code == 200, path
        gate.open.set()
        assert (await held).status_code == 200


async def test_a_waiting_request_whose_client_left_frees_its_place(
    settings: ServiceSettings, mongo: Any, bus: InMemoryBus
) -> None:
    async with one_held(settings, mongo, bus, queue=1) as (client, gate, held):
        waiting = await waiting_in_line(client, gate, 1)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        # Its place in line is free again: another may wait there rather than be refused.
        again = await waiting_in_line(client, gate, 2)
        gate.open.set()
        assert (await held).status_code == 200
        assert (await again).status_code == 200
    assert gate.entered == [0, 2]


@pytest.mark.parametrize("own_line", [True, False])
async def test_paths_in_a_line_of_their_own_never_hold_the_main_line(
    settings: ServiceSettings, mongo: Any, bus: InMemoryBus, own_line: bool
) -> None:
    """A line of its own (`Line`) has its own limit and queue, and the other requests do not
    wait behind it: with its places taken and its queue full, the main line (one place, no
    queue) still serves at once. Without it (the same paths in the main line) they are refused."""
    gate = Gate()
    held, other = "/api/things/held/0", "/api/things/held/1"
    # Two paths, one line: they share its place and its queue.
    lines = [Line(paths=frozenset({held, other}), limit=1, queue=1)] if own_line else []
    settings = limited(settings, http_concurrency=1, http_queue=0 if own_line else 1)
    async with gated(settings, mongo, bus, gate, lines) as client:
        inside = asyncio.create_task(client.get(held))
        await eventually(lambda: gate.inside == 1)
        assert gate.line is not None
        waiting = asyncio.create_task(client.get(other))
        await eventually(lambda: gate.line is not None and gate.line.waiting_for(held) == 1)
        refused = await asyncio.wait_for(client.get(held), 5)  # its own queue is full
        assert refused.status_code == 503
        quick = await asyncio.wait_for(client.get("/api/things/quick"), 5)
        assert quick.status_code == (200 if own_line else 503)
        assert gate.line.waiting == (0 if own_line else 1)
        gate.open.set()
        assert [r.status_code for r in await asyncio.gather(inside, waiting)] == [200, 200]
