"""`/metrics`: the Prometheus text of this process, with the gauges of state read just before.

Counters are counted where things happen (`metrics`); what is a state rather than an event is
read when scraped, by hooks that get the service's runtime: every service's outbox (documents
pending, age of the oldest event) and its consumers' lag on JetStream, plus a service's own
(expiration: jobs waiting in Redis). A hook that fails or hangs (Mongo down) is skipped with a
warning: the scrape still answers, with the last values.

Served on the service's own port, outside `/api`: neither the Ingress nor the local gateway
routes it (they route `/api/<service>` prefixes and `/` to the web client), so only what runs
next to the pods (Prometheus) reads it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ticketing_common.telemetry import metrics

__all__ = [
    "ScrapeHook",
    "metrics_router",
]

log = logging.getLogger("ticketing.telemetry")

RuntimeT = TypeVar("RuntimeT")
# Reads some state of the service into gauges before a scrape.
ScrapeHook: TypeAlias = Callable[[RuntimeT], Awaitable[None]]

SCRAPE_HOOK_TIMEOUT = 2.0


async def outbox_state(runtime: Any) -> None:
    """Per outbox collection: documents with events pending, and the oldest event's age (read
    by the relay, which knows the outbox's fields: telemetry imports no outbox module)."""
    if runtime.db is None:
        return
    service = runtime.bus.service
    async for name, pending, age in runtime.relay.backlog():
        metrics.OUTBOX_PENDING.labels(service, name).set(pending)
        metrics.OUTBOX_OLDEST_AGE.labels(service, name).set(age)


async def consumer_lag(runtime: Any) -> None:
    """Per durable consumer of the service: messages not delivered yet, and not acked yet."""
    service = runtime.bus.service
    for durable, (pending, ack_pending) in (await runtime.bus.consumer_lag()).items():
        metrics.CONSUMER_PENDING.labels(service, durable).set(pending)
        metrics.CONSUMER_ACK_PENDING.labels(service, durable).set(ack_pending)


COMMON_HOOKS: tuple[ScrapeHook[Any], ...] = (outbox_state, consumer_lag)


async def _refresh(runtime: Any, hooks: Sequence[ScrapeHook[Any]]) -> None:
    for hook in (*COMMON_HOOKS, *hooks):
        try:
            await asyncio.wait_for(hook(runtime), SCRAPE_HOOK_TIMEOUT)
        except Exception as exc:
            log.warning("metrics hook failed", extra={"hook": hook.__name__, "error": repr(exc)})


def metrics_router(hooks: Sequence[ScrapeHook[Any]] = ()) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """The process's metrics in the Prometheus text format."""
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            await _refresh(runtime, hooks)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
