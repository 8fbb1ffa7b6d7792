"""Event handlers: schedule an order's expiry when it is created, drop it when it is cancelled.

The expiry is due EXPIRY_GRACE_SECONDS after the order's expiresAt: a payment accepted just
before expiresAt then reaches orders (which completes the order) before the expiry does.

Both are idempotent (a redelivery schedules or drops nothing twice) and cope with either event
arriving first. Redis and RQ calls block, so they run in worker threads, off the event loop.

Redis not answering (down, restarting, loading, refusing our password, failed over to a
read-only replica) is never the event's fault: it is a dependency down, so the bus holds the
event until Redis is back instead of spending its deliveries and dead-lettering an order that
would then never expire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ticketing_common.bus import Dependency, DependencyUnavailable
from ticketing_common.events import Event, OrderCancelled, OrderCreated
from ticketing_common.mongo import as_utc
from ticketing_common.service import Handlers, handles
from ticketing_common.telemetry import metrics, tracing
from ticketing_expiration import repository
from ticketing_expiration.runtime import ExpirationRuntime

log = logging.getLogger("ticketing.expiration")

P = ParamSpec("P")
T = TypeVar("T")

# What Redis raises when it cannot serve anyone right now, whatever the command: unreachable or
# timing out (ConnectionError covers loading, authentication and pool exhaustion too), a
# replica that a failover left read-only, or out of memory. Other Redis errors (a wrong command
# or type) are ours to fix and stay failures.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OutOfMemoryError)


async def in_redis(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking Redis/RQ call in a worker thread; Redis down as DependencyUnavailable."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except REDIS_DOWN as exc:
        raise DependencyUnavailable(
            f"Redis unavailable: {exc!r}", dependency=Dependency.REDIS
        ) from exc


async def on_order_created(runtime: ExpirationRuntime, event: Event[OrderCreated]) -> None:
    data = event.data
    expires_at = as_utc(data.expires_at)
    due_at = expires_at + timedelta(seconds=runtime.settings.expiry_grace_seconds)
    scheduled = await in_redis(
        repository.schedule_expiry,
        runtime.queue,
        order_id=data.id,
        due_at=due_at,
        # The job's span continues this handler's trace (the order's).
        trace=tracing.carrier(),
    )
    if scheduled:
        metrics.EXPIRY_SCHEDULED.labels(runtime.bus.service).inc()
        log.info(
            "expiry scheduled",
            extra={
                "order": data.id,
                "expires_at": expires_at.isoformat(),
                "due_at": due_at.isoformat(),
            },
        )
    else:
        log.info("order already scheduled or cancelled, ignored", extra={"order": data.id})


async def on_order_cancelled(runtime: ExpirationRuntime, event: Event[OrderCancelled]) -> None:
    data = event.data
    dropped = await in_redis(repository.cancel_expiry, runtime.queue, order_id=data.id)
    log.info("order cancelled", extra={"order": data.id, "job_dropped": dropped})


# Both keep their state in Redis: Redis down holds them (see the module's docstring).
HANDLERS: Handlers[ExpirationRuntime] = Handlers(
    handles(OrderCreated, on_order_created, needs={Dependency.REDIS}),
    handles(OrderCancelled, on_order_cancelled, needs={Dependency.REDIS}),
)
