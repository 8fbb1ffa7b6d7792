"""The expiry job: publishes expiration:complete once per order, raises when it cannot."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest

from ticketing_common.bus import JetStreamBus
from ticketing_common.events import Event, ExpirationComplete, Subject
from ticketing_expiration import jobs, repository
from ticketing_testing.servers import ServerProcess, free_port
from ticketing_testing.waiting import eventually, started


class Received:
    """A subscriber's record of expiration:complete events, with when each arrived."""

    def __init__(self) -> None:
        self.events: list[Event[Any]] = []
        self.at: dict[str, float] = {}

    async def __call__(self, event: Event[Any]) -> None:
        self.events.append(event)
        self.at.setdefault(event.data.order_id, time.time())

    def order_ids(self) -> list[str]:
        return [e.data.order_id for e in self.events]


@pytest.fixture
async def received(nats_server: ServerProcess) -> AsyncIterator[Received]:
    rec = Received()
    bus = JetStreamBus(f"nats://{nats_server.url}", "orders-test")
    bus.subscribe(Subject.EXPIRATION_COMPLETE, rec)
    await started(bus)
    yield rec
    await bus.close()


def run_expire(order_id: str, *, redis: Any, nats_url: str, due_at: datetime | None = None) -> str:
    return jobs.expire(
        order_id,
        due_at or datetime.now(UTC) - timedelta(seconds=1),
        redis=redis,
        nats_url=nats_url,
        connect_timeout=3,
    )


def test_the_event_id_is_derived_from_the_order_id() -> None:
    a, b = jobs.expiration_event("o1"), jobs.expiration_event("o1")
    assert a.id == b.id == "expiration-complete-o1"
    assert jobs.expiration_event("o2").id != a.id
    assert a.subject is Subject.EXPIRATION_COMPLETE
    assert a.data == ExpirationComplete(order_id="o1")


@pytest.mark.connected
async def test_the_job_publishes_expiration_complete_once(
    nats_server: ServerProcess, received: Received, redis: fakeredis.FakeRedis
) -> None:
    url = f"nats://{nats_server.url}"
    # The job runs twice for one order (a retry after an unconfirmed publish): JetStream keeps
    # one message, because both carry the same Nats-Msg-Id.
    assert await asyncio.to_thread(run_expire, "order-1", redis=redis, nats_url=url) == "published"
    assert await asyncio.to_thread(run_expire, "order-1", redis=redis, nats_url=url) == "published"
    # A later order's event, consumed after anything else from the stream, closes the check.
    await asyncio.to_thread(run_expire, "order-2", redis=redis, nats_url=url)

    async def both() -> bool:
        return "order-2" in received.order_ids()

    await eventually(both, timeout=10)
    assert received.order_ids() == ["order-1", "order-2"]
    assert received.events[0].id == "expiration-complete-order-1"


def test_the_job_raises_when_nats_is_down(redis: fakeredis.FakeRedis) -> None:
    """So that RQ retries it."""
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match="NATS not reachable"):
        jobs.expire(
            "order-1",
            datetime.now(UTC),
            redis=redis,
            nats_url=url,
            connect_timeout=0.3,
        )


def test_the_job_of_a_cancelled_order_publishes_nothing(redis: fakeredis.FakeRedis) -> None:
    redis.set(repository.cancelled_key("order-1"), b"1")
    # No NATS there: publishing would raise.
    url = f"nats://127.0.0.1:{free_port()}"
    assert run_expire("order-1", redis=redis, nats_url=url) == "cancelled"


def test_a_job_that_runs_early_waits_until_it_is_due(redis: fakeredis.FakeRedis) -> None:
    """RQ schedules to the whole second, so a job may start before its expiresAt."""
    redis.set(repository.cancelled_key("order-1"), b"1")
    due_at = datetime.now(UTC) + timedelta(seconds=0.4)
    url = f"nats://127.0.0.1:{free_port()}"
    run_expire("order-1", redis=redis, nats_url=url, due_at=due_at)
    assert datetime.now(UTC) >= due_at


def test_an_early_wait_is_bounded(redis: fakeredis.FakeRedis) -> None:
    redis.set(repository.cancelled_key("order-1"), b"1")
    url = f"nats://127.0.0.1:{free_port()}"
    started_at = time.monotonic()
    far = datetime.now(UTC) + timedelta(hours=1)
    run_expire("order-1", redis=redis, nats_url=url, due_at=far)
    assert time.monotonic() - started_at < jobs.MAX_EARLY_SECONDS + 0.5
