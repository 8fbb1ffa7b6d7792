"""Orders ends its own overdue orders: no order depends on one event to end.

Expiration's `expiration:complete` normally cancels an unpaid order `EXPIRY_GRACE_SECONDS` after
its `expiresAt`. That event can be lost (Redis wiped with its pending jobs, a job dead-lettered),
and a lost one would hold the ticket forever. So every orders process also sweeps, every
`EXPIRY_SWEEP_SECONDS`, for open orders past `expiresAt` plus the grace, and cancels them
through the same `cancel_order` as the buyer and the event (a compare-and-set: of a sweep, the
event and another process's sweep, exactly one cancels and publishes). The query is one indexed
range scan (status, expiresAt) that normally finds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from ticketing_common.service import Runtime
from ticketing_orders import repository
from ticketing_orders.settings import Settings

log = logging.getLogger("ticketing.orders.expiry")

TASK = "expiry-sweep"


async def sweep_once(runtime: Runtime, settings: Settings, *, now: datetime | None = None) -> int:
    """Cancel every open order whose time and grace are up; returns how many it cancelled."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=settings.expiry_grace_seconds)
    cancelled = 0
    while True:
        overdue = await repository.overdue_orders(runtime.db, cutoff=cutoff)
        progressed = False
        for order_id in overdue:
            result, _ = await repository.cancel_order(runtime.db, order_id=order_id)
            if result is repository.CancelResult.CANCELLED:
                runtime.relay.kick(repository.ORDERS, order_id)
                log.info("overdue order cancelled by the sweep", extra={"order": str(order_id)})
                cancelled += 1
                progressed = True
        # A full page that all changed: there may be more behind it.
        if len(overdue) < repository.SWEEP_PAGE or not progressed:
            break
    # Buyers that died between inserting and confirming: their orders never showed; drop them.
    await repository.sweep_unconfirmed(runtime.db, older_than=cutoff)
    return cancelled


async def _sweep_forever(runtime: Runtime, settings: Settings) -> None:
    while True:
        try:
            await sweep_once(runtime, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Mongo down: the next round tries again; nothing is lost by waiting.
            log.warning("expiry sweep failed", extra={"error": repr(exc)})
        await asyncio.sleep(settings.expiry_sweep_seconds)


def start(runtime: Runtime, settings: Settings) -> None:
    runtime.extras[TASK] = asyncio.create_task(_sweep_forever(runtime, settings), name=TASK)


async def stop(runtime: Runtime) -> None:
    task: asyncio.Task[None] | None = runtime.extras.pop(TASK, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
