"""Event handlers: schedule an order's expiry when it is created, drop it when it is cancelled.

The expiry is due EXPIRY_GRACE_SECONDS after the order's expiresAt: a payment accepted just
before expiresAt then reaches orders (which completes the order) before the expiry does.

Both are idempotent (a redelivery schedules or drops nothing twice) and cope with either event
arriving first. Redis and RQ calls block, so they run in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ticketing_common.events import Event, OrderCancelled, OrderCreated, Subject
from ticketing_common.mongo import as_utc
from ticketing_common.service import EventHandler
from ticketing_common.telemetry import metrics, tracing
from ticketing_expiration import repository
from ticketing_expiration.runtime import ExpirationRuntime

log = logging.getLogger("ticketing.expiration")


async def on_order_created(runtime: ExpirationRuntime, event: Event[OrderCreated]) -> None:
    data = event.data
    expires_at = as_utc(data.expires_at)
    due_at = expires_at + timedelta(seconds=runtime.settings.expiry_grace_seconds)
    scheduled = await asyncio.to_thread(
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
    dropped = await asyncio.to_thread(repository.cancel_expiry, runtime.queue, order_id=data.id)
    log.info("order cancelled", extra={"order": data.id, "job_dropped": dropped})


HANDLERS: dict[Subject, EventHandler[ExpirationRuntime]] = {
    Subject.ORDER_CREATED: on_order_created,
    Subject.ORDER_CANCELLED: on_order_cancelled,
}
