"""Expiration settings: the common ones plus Redis, the RQ queue, when an expiry fires and the
worker's timings."""

from __future__ import annotations

from functools import cache

from ticketing_common.settings import (
    ExpiryGraceKnobs,
    RedisKnobs,
    ServiceSettings,
    Tuning,
)


class ExpirationKnobs(RedisKnobs, ExpiryGraceKnobs):
    """What a deployer sets for expiration (its service and its worker alike): REDIS_URL, where
    the expiry jobs wait; EXPIRY_GRACE_SECONDS (shared with orders), how long after an order's
    expiresAt its expiry fires."""

    queue_name: str = "expiration"
    """The RQ queue the service schedules expiries on and the worker takes them from (the same
    for both)."""
    worker_alive_file: str = ""
    """A file the worker touches while its loop turns, for a liveness probe
    (`python -m ticketing_expiration.alive FILE SECONDS`); unset: none."""


class ExpirationTuning(Tuning):
    """How the expiry job and the worker run."""

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


class Settings(ExpirationTuning, ExpirationKnobs, ServiceSettings):
    """Expiration's settings (the service's and the worker's)."""

    service_name: str = "expiration"


@cache
def get_settings() -> Settings:
    return Settings()
