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

from ticketing_common.outbox import Outbox
from ticketing_orders import reservations, state
from ticketing_orders.settings import Settings

log = logging.getLogger("ticketing.orders.expiry")


async def sweep_once(outbox: Outbox, settings: Settings, *, now: datetime | None = None) -> int:
    """Cancel every open order whose time and grace are up; returns how many it cancelled."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=settings.expiry_grace_seconds)
    cancelled = 0
    while True:
        overdue = await state.overdue_orders(outbox.db, cutoff=cutoff)
        progressed = False
        for order_id in overdue:
            result, _ = await state.cancel_order(outbox, order_id=order_id)
            if result is state.CancelResult.CANCELLED:
                log.info("overdue order cancelled by the sweep", extra={"order": str(order_id)})
                cancelled += 1
                progressed = True
        # A full page that all changed: there may be more behind it.
        if len(overdue) < state.SWEEP_PAGE or not progressed:
            break
    # Buyers that died between inserting and confirming: their orders never showed; drop them.
    await reservations.sweep_unconfirmed(outbox.db, older_than=cutoff)
    return cancelled


class ExpirySweeper:
    """The process's sweep, every `EXPIRY_SWEEP_SECONDS`, from start to stop."""

    def __init__(self, outbox: Outbox, settings: Settings) -> None:
        self.outbox = outbox
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await sweep_once(self.outbox, self.settings)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Mongo down: the next round tries again; nothing is lost by waiting.
                log.warning("expiry sweep failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.settings.expiry_sweep_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever(), name="expiry-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
