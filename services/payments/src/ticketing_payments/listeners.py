"""The orders replica, kept from order events: what payments needs to authorize and to refuse;
and the settling of each order's authorization as orders decided it (see `settle`): captured on
order:completed, voided on order:cancelled.

Handlers are idempotent and order-tolerant (events of different subjects arrive in any order):
a duplicate changes nothing; an order:cancelled or order:completed ahead of its order:created,
or ahead of an earlier version, is deferred with RetryLater until the replica catches up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from ticketing_common.bus import Handler, RetryLater
from ticketing_common.events import (
    Event,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    Subject,
)
from ticketing_common.money import to_cents
from ticketing_common.mongo import Document, as_utc
from ticketing_common.service import Runtime
from ticketing_payments import repository, settle
from ticketing_payments.charges import StripeCharger
from ticketing_payments.deps import get_charger

log = logging.getLogger("ticketing.payments.listeners")

# Applies an order event of `version` to the replica if it is at `version - 1`, else None.
VersionedChange = Callable[..., Awaitable[Document | None]]


async def on_order_created(db: Any, event: Event[OrderCreated]) -> None:
    data = event.data
    inserted = await repository.insert_order(
        db,
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


async def on_order_cancelled(db: Any, charger: StripeCharger, event: Event[OrderCancelled]) -> None:
    replica = await _apply(db, event.subject, event.data, repository.cancel_order)
    if replica["status"] == OrderStatus.CANCELLED:
        await settle.void_cancelled_order(db, charger, replica)


async def on_order_completed(db: Any, charger: StripeCharger, event: Event[OrderCompleted]) -> None:
    replica = await _apply(db, event.subject, event.data, repository.complete_order)
    if replica["status"] == OrderStatus.COMPLETE:
        await settle.capture_completed_order(db, charger, replica)


async def _apply(
    db: Any, subject: Subject, data: OrderCancelled | OrderCompleted, change: VersionedChange
) -> Document:
    """The replica once the event's version is applied to it (now, or by an earlier delivery)."""
    replica = await change(db, order_id=data.id, version=data.version)
    if replica is not None:
        return replica
    replica = await repository.get_order(db, order_id=data.id)
    if replica is None:
        raise RetryLater(f"order {data.id} not replicated yet")
    if replica["version"] < data.version:
        raise RetryLater(
            f"order {data.id} is at version {replica['version']}, event is {data.version}"
        )
    # A duplicate, or this event again after a RetryLater or failure while settling: settling
    # is idempotent, so it runs every time.
    log.info(f"{subject} already applied", extra={"order_id": data.id})
    return replica


def subscriptions(runtime: Runtime) -> Mapping[Subject, Handler]:
    # The charger is built at start-up, after the subscriptions: looked up on use.
    async def order_cancelled(event: Event[OrderCancelled]) -> None:
        await on_order_cancelled(runtime.db, get_charger(runtime), event)

    async def order_completed(event: Event[OrderCompleted]) -> None:
        await on_order_completed(runtime.db, get_charger(runtime), event)

    return {
        Subject.ORDER_CREATED: partial(on_order_created, runtime.db),
        Subject.ORDER_CANCELLED: order_cancelled,
        Subject.ORDER_COMPLETED: order_completed,
    }
