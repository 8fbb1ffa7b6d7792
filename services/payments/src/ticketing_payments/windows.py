"""Closing an order's window to pay: once its time is up, no payment is accepted any more, and
orders cancels the order on payments' word (payment:window-closed), never before it.

Why here and not in orders: only payments knows whether a payment was accepted, and an outage
can hold its payment:created back for as long as it lasts. Were orders to cancel on the expiry
by itself, a payment answered 201 a moment before `expiresAt` could lose to an expiry that
reached orders first (the authorization voided: the buyer paid in time and got nothing). Here
the closing and the payment each insert the order's one document in the payments collection
(`repository.close_window`, `repository.create_payment`): exactly one of them succeeds, whatever
the timing, and its event goes out with it.

Two things close a window: expiration's expiration:complete (at `expiresAt` plus
EXPIRY_GRACE_SECONDS), and, should that event be lost (Redis wiped with its pending jobs),
payments' own sweep of open orders past `expiresAt` plus EXPIRY_SWEEP_GRACE_SECONDS (minutes).
The sweep is a safety net only, and needs no care about outages: a window it closes was not
paid, by construction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from ticketing_common.events import OrderStatus
from ticketing_common.outbox import Outbox
from ticketing_common.periodic import Periodic
from ticketing_payments import replica, repository
from ticketing_payments.settings import Settings

log = logging.getLogger("ticketing.payments.windows")

SWEEP_PAGE = 100
OPEN = (OrderStatus.CREATED.value, OrderStatus.AWAITING_PAYMENT.value)


async def close(outbox: Outbox, *, order_id: str, reason: str) -> bool:
    """Close the order's window unless a payment got there first; True when this closed it.

    An order this replica does not have yet is closed too: nobody can pay for it without the
    replica (404), so no payment can be lost by it, and waiting for its order:created would
    hold the order open for ever should that event never reach payments (dead-lettered here).
    """
    db = outbox.db
    order = await replica.get_order(db, order_id=order_id)
    if order is not None and order["status"] not in OPEN:
        return False  # orders has decided already (the buyer cancelled, or it was paid)
    closed = await repository.close_window(outbox, order_id=order_id, reason=reason)
    # Decided either way now; the mark only spares the sweep a question it would ask again.
    paid = not closed and await repository.window_of(db, order_id=order_id) == "paid"
    await replica.mark_window(db, order_id=order_id, window="paid" if paid else "closed")
    if closed:
        log.info("payment window closed", extra={"order_id": order_id, "reason": reason})
    elif paid:
        log.info("expiry after a payment: the order completes", extra={"order_id": order_id})
    return closed


async def sweep_once(outbox: Outbox, settings: Settings, *, now: datetime | None = None) -> int:
    """Close the window of every open order past `expiresAt` plus the sweep's grace; how many
    it closed."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=settings.expiry_sweep_grace_seconds)
    closed = 0
    while True:
        overdue = await replica.overdue_orders(outbox.db, cutoff=cutoff, limit=SWEEP_PAGE)
        for order_id in overdue:
            if await close(outbox, order_id=order_id, reason="overdue"):
                log.warning(
                    "overdue order's window closed by the sweep (its expiry event never came)",
                    extra={"order_id": order_id},
                )
                closed += 1
        # Each one found is marked decided, so a full page means there may be more.
        if len(overdue) < SWEEP_PAGE:
            return closed


def sweeper(outbox: Outbox, settings: Settings) -> Periodic:
    """The process's sweep, every `EXPIRY_SWEEP_SECONDS`."""
    return Periodic(
        "window sweep", lambda: sweep_once(outbox, settings), every=settings.expiry_sweep_seconds
    )
