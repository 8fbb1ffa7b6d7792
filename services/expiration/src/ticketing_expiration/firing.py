"""Expiry jobs, observed: how late each fired and what it did, for the service's /metrics.

The jobs run in the worker, a process apart from the service's Prometheus registry: each job
adds its firing delay (how long after its due time it published, or found its order cancelled)
to a histogram kept in Redis (one hash: cumulative buckets, sum, and a count per outcome), and
the expiration service reads that hash into its /metrics at every scrape, with the jobs waiting
in the schedule. The hash is shared by every worker and service replica: a dashboard takes
`max` over the instances, not `sum`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from ticketing_common.telemetry import metrics

if TYPE_CHECKING:  # the jobs import this module, and need none of the service's app
    from ticketing_expiration.runtime import ExpirationRuntime

log = logging.getLogger("ticketing.expiration")

KEY = "ticketing:expiration:firing"
OUTCOMES = ("published", "cancelled")
SERVICE = "expiration"
_BOUNDS = [*(str(b) for b in metrics.FIRING_BUCKETS), "+Inf"]


def record(redis: Redis, *, delay: float, outcome: str) -> None:
    """Count one job that fired `delay` seconds after it was due (blocking; never raises: the
    job's work is done, a lost count is only a lost count)."""
    delay = max(delay, 0.0)
    try:
        with redis.pipeline(transaction=False) as pipe:
            for bound in metrics.FIRING_BUCKETS:
                if delay <= bound:
                    pipe.hincrby(KEY, f"le:{bound}", 1)
            pipe.hincrby(KEY, "le:+Inf", 1)
            pipe.hincrbyfloat(KEY, "sum", delay)
            pipe.hincrby(KEY, f"outcome:{outcome}", 1)
            pipe.execute()
    except RedisError as exc:
        log.warning("firing delay not recorded", extra={"error": repr(exc)})


class FiringCollector(Collector):
    """The jobs' counts, as last read from Redis (`refresh`)."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def collect(self) -> Iterator[HistogramMetricFamily | CounterMetricFamily]:
        counts = self.counts
        histogram = HistogramMetricFamily(
            metrics.EXPIRY_FIRING_DELAY,
            "How long after its due time an expiry job fired",
            labels=["service"],
        )
        histogram.add_metric(
            [SERVICE],
            [(bound, counts.get(f"le:{bound}", 0.0)) for bound in _BOUNDS],
            counts.get("sum", 0.0),
        )
        yield histogram
        fired = CounterMetricFamily(
            metrics.EXPIRY_FIRED,
            "Expiry jobs run, by outcome: published, or the order was cancelled",
            labels=["service", "outcome"],
        )
        for outcome in OUTCOMES:
            fired.add_metric([SERVICE, outcome], counts.get(f"outcome:{outcome}", 0.0))
        yield fired


COLLECTOR = FiringCollector()
REGISTRY.register(COLLECTOR)


def _read(runtime: ExpirationRuntime) -> tuple[dict[str, float], int]:
    raw: dict[bytes, bytes] = runtime.redis.hgetall(KEY)  # type: ignore[assignment]  # sync client
    counts = {k.decode(): float(v) for k, v in raw.items()}
    return counts, runtime.queue.scheduled_job_registry.count


async def refresh(runtime: ExpirationRuntime) -> None:
    """The scrape hook: the jobs' counts and the number of jobs waiting, from Redis."""
    COLLECTOR.counts, waiting = await asyncio.to_thread(_read, runtime)
    metrics.EXPIRY_WAITING.labels(runtime.bus.service).set(waiting)
