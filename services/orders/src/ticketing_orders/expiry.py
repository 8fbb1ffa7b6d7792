"""How an order ends when its time is up, and the sweep of reservations nobody confirmed.

Orders does not cancel an order on the clock, nor on expiration's `expiration:complete`: only
payments knows whether a payment was accepted just in time, and its payment:created may be held
back by an outage for as long as it lasts. So expiration's event goes to payments, which closes
the order's window to pay unless a payment got there first (one conditional write decides), and
orders cancels the order on payments' payment:window-closed (`listeners`), through the same
`cancel_order` as the buyer. A lost expiry event is covered by payments' own sweep of overdue
windows (`ticketing_payments.windows`).

What orders still sweeps, every `EXPIRY_SWEEP_SECONDS`: orders whose buyer died between
inserting the order and confirming its reservation; they never showed, and are dropped once
their time and grace (`EXPIRY_GRACE_SECONDS`) are up, freeing the ticket.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ticketing_common.mongo import Database
from ticketing_common.periodic import Periodic
from ticketing_orders import reservations
from ticketing_orders.settings import Settings


async def sweep_once(db: Database, settings: Settings, *, now: datetime | None = None) -> int:
    """Drop every unconfirmed order whose time and grace are up; how many it dropped."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=settings.expiry_grace_seconds)
    return await reservations.sweep_unconfirmed(db, older_than=cutoff)


def sweeper(db: Database, settings: Settings) -> Periodic:
    """The process's sweep, every `EXPIRY_SWEEP_SECONDS`."""
    return Periodic(
        "unconfirmed sweep", lambda: sweep_once(db, settings), every=settings.expiry_sweep_seconds
    )
