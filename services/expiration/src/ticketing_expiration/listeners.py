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
from typing import Any, cast

from rq import Queue

from ticketing_common.bus import Handler
from ticketing_common.events import Event, OrderCancelled, OrderCreated, Subject
from ticketing_common.mongo import as_utc
from ticketing_common.service import Runtime
from ticketing_expiration import repository
from ticketing_expiration.settings import Settings

log = logging.getLogger("ticketing.expiration")

QUEUE = "queue"


def queue_of(runtime: Runtime) -> Queue:
    queue: Queue = runtime.extras[QUEUE]
    return queue


async def on_order_created(runtime: Runtime, event: Event[Any]) -> None:
    data: OrderCreated = event.data
    expires_at = as_utc(data.expires_at)
    grace = cast(Settings, runtime.settings).expiry_grace_seconds
    due_at = expires_at + timedelta(seconds=grace)
    scheduled = await asyncio.to_thread(
        repository.schedule_expiry, queue_of(runtime), order_id=data.id, due_at=due_at
    )
    if scheduled:
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


async def on_order_cancelled(runtime: Runtime, event: Event[Any]) -> None:
    data: OrderCancelled = event.data
    dropped = await asyncio.to_thread(repository.cancel_expiry, queue_of(runtime), order_id=data.id)
    log.info("order cancelled", extra={"order": data.id, "job_dropped": dropped})


def subscriptions(runtime: Runtime) -> dict[Subject, Handler]:
    async def order_created(event: Event[Any]) -> None:
        await on_order_created(runtime, event)

    async def order_cancelled(event: Event[Any]) -> None:
        await on_order_cancelled(runtime, event)

    return {
        Subject.ORDER_CREATED: order_created,
        Subject.ORDER_CANCELLED: order_cancelled,
    }
