"""order:created schedules the expiry job at expiresAt plus the grace, once; order:cancelled
drops it."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import fakeredis
import httpx
import pytest
from pydantic import ValidationError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.job import JobStatus
from rq.utils import current_timestamp, import_attribute

from ticketing_common.bus import DependencyUnavailable, durable_name
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Event, Subject, new_event
from ticketing_expiration import job_guard, jobs, listeners, repository
from ticketing_expiration.main import create_app
from ticketing_expiration.settings import Settings
from ticketing_testing.apps import running
from ticketing_testing.events import order_cancelled, order_created
from ticketing_testing.waiting import eventually


def scheduled_ids(queue: Queue) -> list[str]:
    ids: list[str] = queue.scheduled_job_registry.get_job_ids()
    return ids


GRACE = timedelta(seconds=5)  # EXPIRY_GRACE_SECONDS' default


@pytest.mark.usefixtures("client")
async def test_order_created_schedules_a_job_at_expires_at_plus_the_grace(
    bus: InMemoryBus, queue: Queue
) -> None:
    """A payment accepted at expiresAt reaches orders before the expiry does."""
    event = order_created(expires_in=600)
    await bus.publish(event)
    await bus.drain()

    order_id = event.data.id
    assert scheduled_ids(queue) == [f"expire-{order_id}"]
    due = queue.scheduled_job_registry.get_scheduled_time(f"expire-{order_id}")
    assert abs((due - (event.data.expires_at + GRACE)).total_seconds()) < 1
    job = queue.fetch_job(f"expire-{order_id}")
    assert job is not None
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.func_name == job_guard.EXPIRE_JOB
    assert job.args == [order_id, (event.data.expires_at + GRACE).isoformat()]


@pytest.mark.parametrize("grace", [0.0, 12.5])
async def test_the_grace_is_a_setting(
    settings: Settings, redis: fakeredis.FakeRedis, grace: float
) -> None:
    bus = InMemoryBus("expiration")
    custom = settings.model_copy(update={"expiry_grace_seconds": grace})
    async with running(create_app(custom, bus=bus, redis=redis)):
        event = order_created(expires_in=600)
        await bus.publish(event)
        await bus.drain()
    queue = job_guard.make_queue(redis, settings.queue_name)
    job = queue.fetch_job(repository.job_id_for(event.data.id))
    assert job is not None
    assert job.args[1] == (event.data.expires_at + timedelta(seconds=grace)).isoformat()


def test_the_grace_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(environment="development").expiry_grace_seconds == 5
    monkeypatch.setenv("EXPIRY_GRACE_SECONDS", "2.5")
    assert Settings(environment="development").expiry_grace_seconds == 2.5
    monkeypatch.setenv("EXPIRY_GRACE_SECONDS", "-1")
    with pytest.raises(ValidationError):
        Settings(environment="development")


def test_the_job_is_the_worker_importable_function() -> None:
    assert import_attribute(job_guard.EXPIRE_JOB) is jobs.expire_order


@pytest.mark.usefixtures("client")
async def test_the_job_is_retried_when_it_fails(bus: InMemoryBus, queue: Queue) -> None:
    event = order_created()
    await bus.publish(event)
    await bus.drain()
    job = queue.fetch_job(repository.job_id_for(event.data.id))
    assert job is not None
    assert job.retries_left == repository.RETRY_MAX
    assert job.retry_intervals == repository.RETRY_INTERVALS


@pytest.mark.usefixtures("client")
async def test_a_duplicate_order_created_schedules_once(bus: InMemoryBus, queue: Queue) -> None:
    first = order_created(expires_in=600)
    await bus.publish(first)
    await bus.drain()
    # The same order again, as another delivery (a new envelope id escapes the bus's de-dup),
    # with a later expiresAt that must not move the schedule.
    again = new_event(
        first.data.model_copy(update={"expires_at": first.data.expires_at + timedelta(hours=1)})
    )
    await bus.publish(again)
    await bus.publish(again)
    await bus.drain()

    assert scheduled_ids(queue) == [f"expire-{first.data.id}"]
    due = queue.scheduled_job_registry.get_scheduled_time(f"expire-{first.data.id}")
    assert abs((due - (first.data.expires_at + GRACE)).total_seconds()) < 1


def test_concurrent_scheduling_of_one_order_schedules_once(queue: Queue) -> None:
    expires_at = datetime.now(UTC) + timedelta(minutes=15)
    results: list[bool] = []
    start = threading.Barrier(8)

    def schedule() -> None:
        start.wait()
        results.append(repository.schedule_expiry(queue, order_id="o1", due_at=expires_at))

    threads = [threading.Thread(target=schedule) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert scheduled_ids(queue) == ["expire-o1"]


@pytest.mark.usefixtures("client")
async def test_an_already_past_expires_at_is_due_at_once(bus: InMemoryBus, queue: Queue) -> None:
    event = order_created(expires_in=-30)
    await bus.publish(event)
    await bus.drain()
    due_now = queue.scheduled_job_registry.get_jobs_to_schedule(current_timestamp())
    assert due_now == [f"expire-{event.data.id}"]


@pytest.mark.usefixtures("client")
async def test_order_cancelled_drops_the_scheduled_job(
    bus: InMemoryBus, queue: Queue, redis: fakeredis.FakeRedis
) -> None:
    keep, drop = order_created(), order_created()
    await bus.publish(keep)
    await bus.publish(drop)
    await bus.drain()
    await bus.publish(order_cancelled(drop.data.id))
    await bus.drain()

    assert scheduled_ids(queue) == [f"expire-{keep.data.id}"]
    assert queue.fetch_job(f"expire-{drop.data.id}") is None
    assert repository.is_cancelled(redis, order_id=drop.data.id)
    assert not repository.is_cancelled(redis, order_id=keep.data.id)

    # A late redelivery of the cancelled order's order:created schedules nothing.
    await bus.publish(new_event(drop.data))
    await bus.drain()
    assert scheduled_ids(queue) == [f"expire-{keep.data.id}"]


@pytest.mark.usefixtures("client")
async def test_order_cancelled_before_order_created_schedules_nothing(
    bus: InMemoryBus, queue: Queue
) -> None:
    created = order_created()
    await bus.publish(order_cancelled(created.data.id))
    await bus.drain()
    await bus.publish(created)
    await bus.drain()
    assert scheduled_ids(queue) == []


@pytest.mark.usefixtures("client")
async def test_a_duplicate_order_cancelled_is_harmless(bus: InMemoryBus, queue: Queue) -> None:
    created = order_created()
    await bus.publish(created)
    await bus.drain()
    await bus.publish(order_cancelled(created.data.id))
    await bus.publish(order_cancelled(created.data.id))
    await bus.drain()
    assert scheduled_ids(queue) == []
    assert await bus.dead_letters() == []


def test_cancel_leaves_a_job_already_handed_to_a_worker(
    queue: Queue, redis: fakeredis.FakeRedis
) -> None:
    """Past the schedule the job is the worker's; the marker stops it from publishing."""
    repository.schedule_expiry(queue, order_id="o2", due_at=datetime.now(UTC))
    queue.scheduled_job_registry.remove("expire-o2")  # as the scheduler does when promoting it
    assert not repository.cancel_expiry(queue, order_id="o2")
    assert queue.fetch_job("expire-o2") is not None
    assert repository.is_cancelled(redis, order_id="o2")


@pytest.mark.usefixtures("client")
async def test_an_order_id_unfit_for_a_job_id_still_schedules_once(
    bus: InMemoryBus, queue: Queue
) -> None:
    event = order_created("weird id:with/chars")
    await bus.publish(event)
    await bus.publish(new_event(event.data))
    await bus.drain()
    ids = scheduled_ids(queue)
    assert ids == [repository.job_id_for("weird id:with/chars")]
    assert ids[0].startswith("expire-h")


@pytest.mark.parametrize("event_of", [order_created, lambda: order_cancelled("o-redis-down")])
async def test_redis_down_holds_the_event_and_spends_no_delivery(
    settings: Settings,
    redis_fake: fakeredis.FakeServer,
    redis: fakeredis.FakeRedis,
    event_of: Callable[[], Event[Any]],
) -> None:
    """Redis unreachable is a dependency down, not poison: with one delivery allowed, the
    event is held (not dead-lettered) and applied once Redis is back."""
    bus = InMemoryBus("expiration", retry_delay=0.05, max_hold_delay=0.1, max_deliver=1)
    async with running(create_app(settings, bus=bus, redis=redis)):
        redis_fake.connected = False
        event = event_of()
        await bus.publish(event)
        consumer = bus.broker.consumers[durable_name("expiration", event.subject)]

        async def held() -> bool:
            return bus.dispatcher.holding

        await eventually(held)
        # Held within its first delivery, however often the handler is run again meanwhile.
        assert [p.deliveries for p in consumer.queue] == [1]
        assert await bus.dead_letters() == []
        redis_fake.connected = True
        await bus.drain()
        assert await bus.dead_letters() == []
        assert not bus.dispatcher.holding
    queue = job_guard.make_queue(redis, settings.queue_name)
    if event.subject is Subject.ORDER_CREATED:
        assert scheduled_ids(queue) == [f"expire-{event.data.id}"]
    else:
        assert repository.is_cancelled(redis, order_id=event.data.id)


async def test_a_redis_timeout_is_a_dependency_down(
    settings: Settings, redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def slow(*args: Any, **kwargs: Any) -> bool:
        calls.append("scheduled")
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(repository, "schedule_expiry", slow)
    runtime: Any = SimpleNamespace(settings=settings, queue=None)
    with pytest.raises(DependencyUnavailable, match="Redis unavailable") as raised:
        await listeners.on_order_created(runtime, order_created())
    assert raised.value.dependency == "redis"
    assert calls == ["scheduled"]


def test_a_redis_error_that_is_ours_stays_a_failure() -> None:
    """A wrong command is no outage: it must not hold the service for ever."""
    assert not issubclass(ResponseError, listeners.REDIS_DOWN)


async def test_only_health_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    res = await client.get("/api/expiration")
    assert res.status_code == 404
    assert res.json() == {"errors": [{"message": "Not Found"}]}


async def test_ready_when_redis_and_the_bus_answer(client: httpx.AsyncClient) -> None:
    res = await client.get("/readyz")
    assert res.status_code == 200
    assert res.json() == {"status": "ready"}


async def test_not_ready_without_redis(
    client: httpx.AsyncClient, redis_fake: fakeredis.FakeServer
) -> None:
    redis_fake.connected = False
    res = await client.get("/readyz")
    assert res.status_code == 503
    assert res.json() == {"errors": [{"message": "Not ready: redis: ConnectionError"}]}
