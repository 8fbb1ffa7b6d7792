"""The RQ worker that runs the expiry jobs: `python -m ticketing_expiration.worker`.

One process runs the worker and, forked from it, RQ's scheduler, which moves due jobs from the
schedule to the queue every second (RQ's fixed interval; its lock TTLs must be whole seconds).
Several worker processes may run: one of them holds the scheduler lock, the others take it over
within a minute if it dies. Reads REDIS_URL and NATS_URL (and the rest of `Settings`).
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import time
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from ticketing_common.logs import configure_logging
from ticketing_common.telemetry import tracing
from ticketing_expiration import alive, job_guard, repository
from ticketing_expiration.settings import Settings, get_settings

log = logging.getLogger("ticketing.expiration")

# RQ derives its blocking dequeue timeout from the worker TTL: `worker_ttl - 15` seconds.
_RQ_TTL_MARGIN = 15


class ExpirationWorker(SimpleWorker):
    """RQ's worker running each job in its own process, not a fork per job (see jobs.py: the
    fork, tracing set-up and NATS connection per job made a burst of expiries queue), and
    remembering whether it was told to stop (SIGTERM/SIGINT)."""

    # RQ backs off up to a minute between attempts to reach a lost Redis, and the scheduler is
    # only revived once it is reached again: expiries due meanwhile would wait that long.
    max_connection_wait_time = 2.0
    stop_signalled = False
    alive_file = ""

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # Before Redis is asked: a worker waiting for a lost Redis is alive all the same.
        alive.touch(self.alive_file)
        super().heartbeat(timeout, pipeline)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signalled = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # rq is untyped

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job if it is an expiry job; drop anything else, unrun (see
        `job_guard.refusal`): logged, and deleted rather than failed, so no retry or failed
        registry keeps it around to be run by another worker or re-queued by hand."""
        reason = job_guard.refusal(job)
        if reason is None:
            super().execute_job(job, queue)
            return
        log.error(
            "job refused: not an expiry job, dropped unrun",
            extra={"job": job.id, "queue": queue.name, "reason": reason},
        )
        # Dequeuing moved it to the queue's intermediate list: it leaves that too, or RQ's
        # maintenance would later file it among the failed jobs.
        queue.intermediate_queue.remove(job.id)
        job.delete(remove_from_queue=True)
        self.set_state(WorkerStatus.IDLE)


def build_worker(redis: Redis, settings: Settings) -> ExpirationWorker:
    worker = ExpirationWorker(
        [job_guard.make_queue(redis, settings.queue_name)],
        connection=redis,
        serializer=JSONSerializer,
        job_class=job_guard.ExpiryJob,
        maintenance_interval=settings.worker_maintenance_interval_seconds,
        worker_ttl=_RQ_TTL_MARGIN + settings.worker_dequeue_timeout_seconds,
        job_monitoring_interval=5,
    )
    worker.alive_file = settings.worker_alive_file
    return worker


class _Stop:
    requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _wait_for_redis(redis: Redis, stop: _Stop, alive_file: str = "") -> bool:
    """Block until Redis answers (True) or a stop is requested (False)."""
    delay = 0.2
    while not stop.requested:
        alive.touch(alive_file)
        try:
            redis.ping()
            return True
        except RedisError as exc:
            log.warning("redis not reachable, retrying", extra={"error": repr(exc)})
        deadline = time.monotonic() + delay
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.05)
        delay = min(delay * 2, 5.0)
    return False


def run(settings: Settings) -> None:
    """Run the worker until SIGTERM/SIGINT, starting it again whenever it gives up on Redis.

    RQ's worker leaves its loop on some Redis errors (a restart at the wrong moment); this keeps
    the process, and so the expiries, going without waiting for a supervisor to restart it.
    """
    redis = repository.connect(settings.redis_url)
    stop = _Stop()
    while True:
        # Between two runs of the worker its own signal handlers are not in force.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if not _wait_for_redis(redis, stop, settings.worker_alive_file):
            return
        try:
            worker = build_worker(redis, settings)
        except RedisError as exc:
            log.warning("worker could not register, retrying", extra={"error": repr(exc)})
            continue
        log.info("worker starting", extra={"queue": settings.queue_name, "worker": worker.name})
        try:
            worker.work(with_scheduler=True, logging_level=settings.worker_log_level)
        except RedisError as exc:
            # Redis lost while the worker starts its scheduler, outside RQ's own error handling.
            log.warning("worker lost redis", extra={"error": repr(exc)})
        if worker.stop_signalled or stop.requested:
            log.info("worker stopped")
            return
        log.warning("worker left its loop, starting it again", extra={"worker": worker.name})


def main() -> None:
    settings = get_settings()
    configure_logging("expiration-worker", settings.log_level)
    # Each job's short-lived NATS connection would log a connect and a "disconnected" warning;
    # a failed publish is the job's exception, which RQ logs and retries.
    logging.getLogger("ticketing.bus").setLevel(logging.ERROR)
    # The job's module, imported once here (with its tracing and NATS libraries), and tracing
    # set up once for every job this process runs.
    importlib.import_module(job_guard.EXPIRE_JOB.rpartition(".")[0])
    traces = tracing.configure("expiration", settings, process="expiration-worker")
    try:
        run(settings)
    finally:
        traces.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
