"""Expiration settings: the common ones plus Redis, the RQ queue and the worker's timings."""

from __future__ import annotations

from functools import cache

from pydantic import NonNegativeFloat

from ticketing_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "expiration"

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "expiration"

    # An order's expiry fires this long after its expiresAt (EXPIRY_GRACE_SECONDS): a buyer may
    # pay up to expiresAt, and the payment:created of a payment accepted at the last moment must
    # reach orders before expiration:complete does, or orders cancels a paid-for order (whose
    # authorization is then voided: no money taken, but no sale either).
    expiry_grace_seconds: NonNegativeFloat = 5.0

    # How long the job waits for NATS before failing; a failed job is retried by RQ.
    nats_connect_timeout_seconds: float = 5.0

    # RQ's scheduler dies with its Redis connection (a Redis restart) and the worker revives it
    # only from its maintenance tasks, which it runs at most every `maintenance_interval` and
    # only between two blocking dequeues (each `worker_ttl - 15` s long): both kept short so
    # scheduled expiries resume within a few seconds of Redis coming back.
    worker_maintenance_interval_seconds: int = 2
    worker_dequeue_timeout_seconds: int = 1
    # RQ logs every job and every maintenance run at INFO; ours logs each expiry itself.
    worker_log_level: str = "WARNING"
    # A file the worker touches while its loop turns, for a liveness probe
    # (`python -m ticketing_expiration.alive FILE SECONDS`); empty: none.
    worker_alive_file: str = ""


@cache
def get_settings() -> Settings:
    return Settings()
