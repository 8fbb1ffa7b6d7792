"""The worker runs the expiry job alone: what a job in Redis names is read as data, and
anything but the expiry job as this service schedules it is refused without importing it."""

from datetime import UTC, datetime

import fakeredis
import pytest
from rq import Callback, Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from ticketing_expiration import job_guard, repository


def written(redis: fakeredis.FakeRedis, func: str, *args: object, **kwargs: object) -> Job:
    """A job as anyone who can write to Redis could put it there, read back as the worker does."""
    plain = Queue("expiration", connection=redis, serializer=JSONSerializer)
    job = plain.enqueue(func, *args, **kwargs)
    found = job_guard.make_queue(redis, "expiration").fetch_job(job.id)
    assert isinstance(found, job_guard.ExpiryJob)
    return found


def test_an_expiry_job_as_scheduled_is_accepted(redis: fakeredis.FakeRedis) -> None:
    queue = job_guard.make_queue(redis, "expiration")
    due = datetime.now(UTC)
    repository.schedule_expiry(queue, order_id="o1", due_at=due, trace={"traceparent": "00-x"})
    job = queue.fetch_job(repository.job_id_for("o1"))
    assert job is not None
    assert job_guard.refusal(job) is None


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "reason"),
    [
        ("os.system", ("touch /tmp/owned",), {}, "'os.system', not the expiry job"),
        (job_guard.EXPIRE_JOB, ("o1",), {}, "arguments"),
        (job_guard.EXPIRE_JOB, ("o1", 5), {}, "arguments"),
        (job_guard.EXPIRE_JOB, ("o1", "2030-01-01T00:00:00+00:00"), {"x": 1}, "keyword"),
    ],
)
def test_anything_else_is_refused(
    redis: fakeredis.FakeRedis,
    func: str,
    args: tuple[object, ...],
    kwargs: dict[str, object],
    reason: str,
) -> None:
    job = written(redis, func, *args, **kwargs)
    refused = job_guard.refusal(job)
    assert refused is not None
    assert reason in refused
    with pytest.raises(job_guard.RefusedJob):
        job.perform()


def test_data_that_is_not_json_is_refused(redis: fakeredis.FakeRedis) -> None:
    job = written(redis, job_guard.EXPIRE_JOB, "o1", "2030-01-01T00:00:00+00:00")
    redis.hset(job.key, "data", b"\x80\x04not json")  # e.g. a pickle
    again = job_guard.make_queue(redis, "expiration").fetch_job(job.id)
    assert again is not None
    assert job_guard.refusal(again) == "its data is not JSON this service wrote"


def test_a_callback_named_in_redis_is_never_imported(redis: fakeredis.FakeRedis) -> None:
    """RQ would import and call a callback after a run, or when its maintenance finds the job
    abandoned: the expiry job has none, so none is ever looked up."""
    job = written(
        redis,
        job_guard.EXPIRE_JOB,
        "o1",
        "2030-01-01T00:00:00+00:00",
        on_success=Callback("os.system"),
        on_failure=Callback("os.system"),
        on_stopped=Callback("os.system"),
    )
    assert (job.success_callback, job.failure_callback, job.stopped_callback) == (None,) * 3
