"""An order's state machine: created, then complete (paid) or cancelled (by its buyer or by
expiry), once and one way.

Orders alone decides an order's fate: `cancel_order` and `complete_order` each change an open
order with one conditional write that also stores the event announcing it
(`repository.mark_cancelled`, `repository.mark_complete`), so exactly one of them wins whatever
the timing, and the event exists exactly when the change does.
"""

from __future__ import annotations

from enum import Enum, auto

from bson import ObjectId

from ticketing_common.events import OrderStatus
from ticketing_common.outbox import Outbox
from ticketing_orders import replica, repository
from ticketing_orders.repository import OrderDoc

# Each retry of a conditional write follows another writer's successful change to the same
# document, and an order or a reservation changes only a handful of times, so a few attempts
# always suffice.
ATTEMPTS = 5


class CancelResult(Enum):
    CANCELLED = auto()
    ALREADY_CANCELLED = auto()
    COMPLETE = auto()
    NOT_FOUND = auto()


class CompleteResult(Enum):
    COMPLETED = auto()
    ALREADY_COMPLETE = auto()
    CANCELLED = auto()
    NOT_FOUND = auto()


async def cancel_order(
    outbox: Outbox, *, order_id: ObjectId
) -> tuple[CancelResult, OrderDoc | None]:
    """Cancel an open order (publishing order:cancelled) and free its ticket.

    The one way an order is cancelled, by its buyer or by expiry. Cancelling a cancelled order
    changes nothing and publishes nothing; a complete (paid) order cannot be cancelled.
    """
    db = outbox.db
    for _ in range(ATTEMPTS):
        order = await repository.get_order(db, order_id=order_id)
        if order is None:
            return CancelResult.NOT_FOUND, None
        if order["status"] == OrderStatus.COMPLETE:
            return CancelResult.COMPLETE, order
        if order["status"] == OrderStatus.CANCELLED:
            # The release may not have happened if a process died right after the cancel.
            await replica.release_ticket(db, ticket_id=order["ticketId"], order_id=str(order_id))
            return CancelResult.ALREADY_CANCELLED, order
        updated = await repository.mark_cancelled(outbox, order=order)
        if updated is not None:
            await replica.release_ticket(db, ticket_id=order["ticketId"], order_id=str(order_id))
            return CancelResult.CANCELLED, updated
    raise RuntimeError(f"order {order_id} kept changing while being cancelled")


async def complete_order(outbox: Outbox, *, order_id: ObjectId) -> CompleteResult:
    """Complete an open order that a payment authorized, publishing order:completed.

    A cancelled order never becomes complete (payments voids its authorization on
    order:cancelled); a complete one publishes nothing more. order:completed (which makes
    payments capture the money) is written in the same update as the status, so it exists
    exactly when the order is complete.
    """
    for _ in range(ATTEMPTS):
        order = await repository.get_order(outbox.db, order_id=order_id)
        if order is None:
            return CompleteResult.NOT_FOUND
        if order["status"] == OrderStatus.COMPLETE:
            return CompleteResult.ALREADY_COMPLETE
        if order["status"] == OrderStatus.CANCELLED:
            return CompleteResult.CANCELLED
        if await repository.mark_complete(outbox, order=order):
            return CompleteResult.COMPLETED
    raise RuntimeError(f"order {order_id} kept changing while being completed")
