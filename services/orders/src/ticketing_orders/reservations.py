"""The atomic reservation: of any number of concurrent buyers of one ticket exactly one ends
with an open order, on every Mongo we run on, without transactions, partial unique indexes or
clocks (see `create_order`).

The order is inserted unconfirmed, the ticket's replica is reserved naming it with a
conditional single-document update, and the order then confirms with a compare-and-set. Only a
holder that never confirmed, or whose order is cancelled or gone, can be taken over, and taking
over an unconfirmed holder is the compare-and-set that its confirmation would need.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from ticketing_common.events import OrderStatus
from ticketing_common.mongo import Database, parse_object_id
from ticketing_common.outbox import Outbox
from ticketing_orders import buyers, replica, repository
from ticketing_orders.errors import (
    TicketNotFoundError,
    TicketReservedError,
    TooManyOpenOrdersError,
)
from ticketing_orders.replica import TicketReplicaDoc
from ticketing_orders.repository import OrderDoc
from ticketing_orders.state import ATTEMPTS

log = logging.getLogger("ticketing.orders")

# How long a buyer who finds the ticket held by an unconfirmed order waits for it to confirm
# before withdrawing it (a live buyer confirms within milliseconds; a dead one never does).
CONFIRM_PATIENCE_SECONDS = 0.25
CONFIRM_POLL_SECONDS = 0.01

# Unconfirmed orders the sweep drops per run.
SWEEP_PAGE = 100

# A pause point between the steps of a reservation: tests interleave two buyers through it.
Pause = Callable[[str], Awaitable[None]]


def _to_millis(value: datetime) -> datetime:
    # BSON dates hold milliseconds: truncate up front so the response, the event and every
    # later read of the order carry the same instant.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


async def _no_pause(step: str) -> None:
    return None


async def _holder_stands(db: Database, *, holder: str, pause: Pause) -> bool:
    """Whether the ticket's holder keeps it: a confirmed order that is not cancelled.

    An unconfirmed holder (a buyer between reserving and confirming, alive or dead) is given
    `CONFIRM_PATIENCE_SECONDS` to confirm, then withdrawn; a holder that does not exist was
    withdrawn before. Correctness depends on no clock: the patience only keeps a rush of buyers
    from withdrawing each other in turn (each withdrawal costs its victim the sale) while the
    first is milliseconds from confirming.
    """
    order_id = parse_object_id(holder)
    if order_id is None:
        return False
    waited_since = time.monotonic()
    for _ in range(ATTEMPTS):
        order = await repository.get_holder(db, order_id=order_id)
        while (
            order is not None
            and order.get("confirmed") is False
            and time.monotonic() - waited_since < CONFIRM_PATIENCE_SECONDS
        ):
            await asyncio.sleep(CONFIRM_POLL_SECONDS)
            order = await repository.get_holder(db, order_id=order_id)
        if order is None:
            return False
        if order.get("confirmed") is False:
            await pause("withdraw")
            if await repository.withdraw_unconfirmed(db, order_id=order_id):
                return False
            continue  # it confirmed in the meantime: read it again
        return bool(order["status"] != OrderStatus.CANCELLED)
    return True  # changing under us: leave it to its owner


async def reserve_ticket(
    db: Database, *, ticket_id: str, order_id: str, pause: Pause = _no_pause
) -> TicketReplicaDoc:
    """Reserve the ticket for the (inserted, unconfirmed) order `order_id` (`replica.take`) and
    return it; raise TicketReservedError if a holder that stands has it."""
    for _ in range(ATTEMPTS):
        ticket = await replica.take(db, ticket_id=ticket_id, holder=None, order_id=order_id)
        if ticket is not None:
            return ticket
        current = await replica.get_ticket(db, ticket_id=ticket_id)
        if current is None:
            raise TicketNotFoundError()
        holder = current.get("reservedBy")
        if holder is None:
            continue  # released in the meantime: try again
        await pause("check holder")
        if await _holder_stands(db, holder=holder, pause=pause):
            raise TicketReservedError()
        await pause("take over")
        ticket = await replica.take(db, ticket_id=ticket_id, holder=holder, order_id=order_id)
        if ticket is not None:
            log.info(
                "reservation taken over",
                extra={"ticket_id": ticket_id, "from_order": holder, "order_id": order_id},
            )
            return ticket
    raise TicketReservedError()


async def create_order(
    outbox: Outbox,
    *,
    user_id: str,
    ticket_id: str,
    expires_in: timedelta,
    max_open: int = buyers.DEFAULT_MAX_OPEN_ORDERS,
    pause: Pause = _no_pause,
) -> tuple[OrderDoc, TicketReplicaDoc]:
    """Insert the order, reserve the ticket naming it, confirm; (order, ticket).

    Four writes, each safe to be the last one that happens:
    1. the order is inserted unconfirmed: invisible, announces nothing, holds nothing;
    2. it takes one of the buyer's `max_open` places (`buyers.take_place`), or is withdrawn
       and TooManyOpenOrdersError raised before anything else is written; a place left by a
       buyer that dies from here on is given back when the buyer next finds their list full;
    3. the ticket is reserved naming it (or taken over from a holder that does not stand);
    4. the order confirms with a compare-and-set (`confirmed: False -> True`) that also writes
       order:created to its outbox (`repository.confirm`). Another buyer may withdraw an
       unconfirmed holder (delete it with the opposite compare-and-set,
       `repository.withdraw_unconfirmed`) and take the ticket; exactly one of the two matches.
    A buyer that dies after 3 leaves a holder any later buyer may take over at once. Each
    write is the repository's (or the replica's) function named for its step.
    """
    db = outbox.db
    # No read of the ticket first (a round trip on every purchase): an unknown ticket is found
    # out by the reservation, and the inserted order is withdrawn like any that loses.
    order_id = ObjectId()
    expires_at = _to_millis(datetime.now(UTC) + expires_in)
    await pause("insert")
    await repository.insert_unconfirmed(
        outbox, order_id=order_id, user_id=user_id, ticket_id=ticket_id, expires_at=expires_at
    )
    try:
        await buyers.take_place(db, user_id=user_id, order_id=order_id, limit=max_open)
    except TooManyOpenOrdersError:
        await repository.withdraw_unconfirmed(db, order_id=order_id)
        raise
    try:
        await pause("reserve")
        ticket = await reserve_ticket(db, ticket_id=ticket_id, order_id=str(order_id), pause=pause)
        await pause("confirm")
        order = await repository.confirm(
            outbox,
            order_id=order_id,
            user_id=user_id,
            ticket_id=ticket_id,
            expires_at=expires_at,
            price_cents=ticket["priceCents"],
        )
        if order is None:
            # Withdrawn by a buyer who found the reservation unconfirmed and took it over.
            log.info("reservation taken over before confirmation", extra={"order": str(order_id)})
            raise TicketReservedError()
    except (TicketReservedError, TicketNotFoundError):
        await repository.withdraw_unconfirmed(db, order_id=order_id)
        await replica.release_ticket(db, ticket_id=ticket_id, order_id=str(order_id))
        await buyers.give_back_place(db, user_id=user_id, order_id=order_id)
        raise
    return order, ticket


async def sweep_unconfirmed(db: Database, *, older_than: datetime, limit: int = SWEEP_PAGE) -> int:
    """Delete orders that never confirmed (their buyer died mid-way) and free what they hold."""
    removed = 0
    for doc in await repository.unconfirmed_before(db, older_than=older_than, limit=limit):
        if await repository.withdraw_unconfirmed(db, order_id=doc["_id"]):
            await replica.release_ticket(db, ticket_id=doc["ticketId"], order_id=str(doc["_id"]))
            removed += 1
    return removed
