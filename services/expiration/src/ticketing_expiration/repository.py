"""The scheduled expiries: one RQ job per order, in Redis, due at the order's expiresAt plus
the grace (see `Settings.expiry_grace_seconds`).

The job id is derived from the order id, so the job itself is the record that an order's expiry
is scheduled: a redelivered order:created finds it and schedules nothing. The check and the
scheduling run as one optimistic transaction (WATCH/MULTI), so two processes handling the same
event concurrently still schedule one job. A cancelled order leaves a marker for a day: it stops
an order:created that arrives after its order:cancelled (separate consumers, any order) and a job
that was already on its way to a worker.

What a worker may run of what it finds in Redis is `job_guard`'s.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue, Retry
from rq.job import JOB_ID_PATTERN

from ticketing_common.telemetry.tracing import TraceCarrier
from ticketing_expiration.job_guard import EXPIRE_JOB

JOB_PREFIX = "expire-"
CANCELLED_PREFIX = "ticketing:expiration:cancelled:"
CANCELLED_TTL_SECONDS = 24 * 3600
# A finished job is kept this long so that a late redelivery of its order:created finds it and
# does not schedule the expiry a second time.
RESULT_TTL_SECONDS = 24 * 3600
JOB_TIMEOUT_SECONDS = 60
# A job whose publish fails (NATS down) is retried, backing off to once a minute, for about a
# day: an expiry is only lost if NATS stays down longer than that.
RETRY_INTERVALS = [1, 2, 5, 10, 30, 60]
RETRY_MAX = 24 * 60


def connect(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def _key_part(order_id: str) -> str:
    """The order id if it is safe in an RQ job id and a header, else a digest of it."""
    if JOB_ID_PATTERN.fullmatch(order_id) and len(order_id) <= 64:
        return order_id
    return "h" + hashlib.sha256(order_id.encode()).hexdigest()[:40]


def job_id_for(order_id: str) -> str:
    return JOB_PREFIX + _key_part(order_id)


def event_id_for(order_id: str) -> str:
    """The id of the order's expiration:complete, the same on every retry (Nats-Msg-Id)."""
    return "expiration-complete-" + _key_part(order_id)


def cancelled_key(order_id: str) -> str:
    return CANCELLED_PREFIX + _key_part(order_id)


def schedule_expiry(
    queue: Queue, *, order_id: str, due_at: datetime, trace: TraceCarrier | None = None
) -> bool:
    """Schedule the order's expiry job at `due_at` (now if past); False if already done.

    `trace`: the trace context the job's span continues (the order's). Blocking (Redis): call
    it from a worker thread.
    """
    job = queue.create_job(
        EXPIRE_JOB,
        # The job gets its due time (it waits out the rest should RQ hand it over early).
        args=(order_id, due_at.isoformat()),
        kwargs={"trace": dict(trace)} if trace else None,
        job_id=job_id_for(order_id),
        timeout=JOB_TIMEOUT_SECONDS,
        result_ttl=RESULT_TTL_SECONDS,
        retry=Retry(max=RETRY_MAX, interval=RETRY_INTERVALS),
        description=f"expire order {order_id}",
    )
    marker = cancelled_key(order_id)
    with queue.connection.pipeline() as pipe:
        while True:
            try:
                # A concurrent schedule (the job key) or cancel (the marker) between this check
                # and EXEC aborts the transaction, and the check runs again.
                pipe.watch(job.key, marker)  # type: ignore[no-untyped-call]  # redis-py: untyped
                if pipe.exists(job.key, marker):
                    return False
                pipe.multi()
                queue.schedule_job(job, due_at, pipeline=pipe)
                pipe.execute()
                return True
            except WatchError:
                continue


def cancel_expiry(queue: Queue, *, order_id: str) -> bool:
    """Mark the order cancelled and drop its job if still waiting; True if a job was dropped.

    Blocking (Redis): call it from a worker thread.
    """
    redis = queue.connection
    # The marker first: from here on, neither a late order:created nor a job that the scheduler
    # already handed to a worker will expire the order.
    redis.set(cancelled_key(order_id), b"1", ex=CANCELLED_TTL_SECONDS)
    job_id = job_id_for(order_id)
    # ZREM is atomic: 1 means the job was still waiting and no worker will get it.
    if not queue.scheduled_job_registry.remove(job_id):
        return False
    job = queue.fetch_job(job_id)
    if job is not None:
        job.delete(remove_from_queue=True)
    return True


def is_cancelled(redis: Redis, *, order_id: str) -> bool:
    return bool(redis.exists(cancelled_key(order_id)))


def scheduled_at(queue: Queue, *, order_id: str) -> datetime | None:
    """When the order's job is due, or None if it is not waiting in the schedule."""
    score = queue.connection.zscore(queue.scheduled_job_registry.key, job_id_for(order_id))
    if score is None:
        return None
    return datetime.fromtimestamp(float(score), tz=UTC)
