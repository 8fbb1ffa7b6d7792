"""The orders replica, kept from order events: what payments needs to authorize and to refuse;
the settling of each order's authorization as orders decided it (see `settle`): captured on
order:completed, voided on order:cancelled; and the closing of an order's window to pay on
expiration:complete (see `windows`).

Handlers are idempotent and order-tolerant (events of different subjects arrive in any order):
a duplicate changes nothing; an order:cancelled or order:completed ahead of its order:created,
or ahead of an earlier version, is deferred with RetryLater until the replica catches up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ticketing_common.bus import Dependency, RetryLater
from ticketing_common.events import (
    Event,
    ExpirationComplete,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    Subject,
)
from ticketing_common.money import to_cents
from ticketing_common.mongo import Database, as_utc
from ticketing_common.service import Handlers, handles
from ticketing_payments import replica, settle, windows
from ticketing_payments.replica import OrderReplicaDoc
from ticketing_payments.runtime import PaymentsRuntime

log = logging.getLogger("ticketing.payments.listeners")

# Applies an order event of `version` to the replica if it is at `version - 1`, else None.
VersionedChange = Callable[..., Awaitable[OrderReplicaDoc | None]]


async def on_order_created(runtime: PaymentsRuntime, event: Event[OrderCreated]) -> None:
    data = event.data
    inserted = await replica.insert_order(
        runtime.db,
        order_id=data.id,
        user_id=data.user_id,
        status=data.status.value,
        version=data.version,
        # A price that is not whole cents breaks the contract: failing (and, after the last
        # retry, dead-lettering) beats charging a rounded amount.
        price_cents=to_cents(data.ticket.price),
        expires_at=as_utc(data.expires_at),
    )
    if not inserted:
        log.info("duplicate order:created ignored", extra={"order_id": data.id})


async def on_order_cancelled(runtime: PaymentsRuntime, event: Event[OrderCancelled]) -> None:
    order = await _apply(runtime.db, event.subject, event.data, replica.cancel_order)
    if order["status"] == OrderStatus.CANCELLED:
        await settle.void_cancelled_order(runtime.db, runtime.charger, order)


async def on_order_completed(runtime: PaymentsRuntime, event: Event[OrderCompleted]) -> None:
    order = await _apply(runtime.db, event.subject, event.data, replica.complete_order)
    if order["status"] == OrderStatus.COMPLETE:
        await settle.capture_completed_order(runtime.db, runtime.charger, order)


async def on_expiration_complete(
    runtime: PaymentsRuntime, event: Event[ExpirationComplete]
) -> None:
    # A payment accepted in time wins even if this comes first (it cannot, after it).
    await windows.close(runtime.outbox, order_id=event.data.order_id, reason="expired")


async def _apply(
    db: Database, subject: Subject, data: OrderCancelled | OrderCompleted, change: VersionedChange
) -> OrderReplicaDoc:
    """The replica once the event's version is applied to it (now, or by an earlier delivery)."""
    order = await change(db, order_id=data.id, version=data.version)
    if order is not None:
        return order
    order = await replica.get_order(db, order_id=data.id)
    if order is None:
        raise RetryLater(f"order {data.id} not replicated yet")
    if order["version"] < data.version:
        raise RetryLater(
            f"order {data.id} is at version {order['version']}, event is {data.version}"
        )
    # A duplicate, or this event again after a RetryLater or failure while settling: settling
    # is idempotent, so it runs every time.
    log.info(f"{subject} already applied", extra={"order_id": data.id})
    return order


HANDLERS: Handlers[PaymentsRuntime] = Handlers(
    handles(OrderCreated, on_order_created),
    # Capture and void call Stripe: while it fails, they wait, and the replica of new orders
    # (which a buyer's payment needs) goes on.
    handles(OrderCancelled, on_order_cancelled, needs={Dependency.STRIPE}),
    handles(OrderCompleted, on_order_completed, needs={Dependency.STRIPE}),
    handles(ExpirationComplete, on_expiration_complete),
)
