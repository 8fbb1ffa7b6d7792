"""The worker runs the expiry job alone: what a job in Redis names is read as data, and anything
but the expiry job as `repository.schedule_expiry` writes it is refused without importing it.

RQ imports and calls whatever function a job's hash names: whoever can write to Redis could
otherwise run any code in the worker (`os.system`...). So the queue is JSON, never pickle, and
its jobs are `ExpiryJob`, which runs nothing but the expiry job and never a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.types import FailureCallbackType, SuccessCallbackType

# The job function, by name: what a worker imports (and no import cycle with jobs.py).
EXPIRE_JOB = "ticketing_expiration.jobs.expire_order"


class RefusedJob(Exception):
    """A job in Redis that is not an expiry job as this service writes it: never run."""


def refusal(job: Job) -> str | None:
    """Why a worker must not run `job`, or None if it is an expiry job as
    `repository.schedule_expiry` writes it: the expiry function, by name, with (order id, due
    time) and at most a trace. Read from the job's data only: nothing is imported to decide.
    """
    try:
        func_name, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
    except DeserializationError:
        return "its data is not JSON this service wrote"
    if func_name != EXPIRE_JOB or instance is not None:
        return f"it names {func_name!r}, not the expiry job"
    if len(args) != 2 or not all(isinstance(a, str) for a in args):
        return "its arguments are not an order id and a due time"
    if not isinstance(kwargs, dict) or not set(kwargs) <= {"trace"}:
        return "its keyword arguments are not the expiry job's"
    if job.webhooks:
        return "it names webhooks"
    return None


class ExpiryJob(Job):
    """RQ's job, running nothing but the expiry job (see `refusal`) and never a callback: the
    expiry job has none, so a callback named in Redis is never imported, wherever RQ would call
    it (after a run, or when its maintenance finds a job abandoned)."""

    @property
    def func(self) -> Callable[..., Any] | None:
        reason = refusal(self)
        if reason is not None:
            raise RefusedJob(f"job {self.id} refused: {reason}")
        found: Callable[..., Any] | None = super().func
        return found

    @property
    def success_callback(self) -> SuccessCallbackType | None:
        return None

    @property
    def failure_callback(self) -> FailureCallbackType | None:
        return None

    @property
    def stopped_callback(self) -> Callable[[Job, Redis], Any] | None:
        return None


def make_queue(redis: Redis, name: str) -> Queue:
    # JSON, not RQ's default pickle: what a worker loads from Redis is data, never code; and
    # jobs as ExpiryJob, which runs nothing but the expiry job.
    return Queue(name, connection=redis, serializer=JSONSerializer, job_class=ExpiryJob)
