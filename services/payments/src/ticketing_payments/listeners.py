"""The orders replica, kept from order events: what payments needs to charge and to refuse; and
refunds for orders cancelled once paid.

Handlers are idempotent and order-tolerant (events of different subjects arrive in any order):
a duplicate changes nothing; an order:cancelled ahead of its order:created, or ahead of an
earlier version, is deferred with RetryLater until the replica catches up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from ticketing_common.bus import Handler, RetryLater
from ticketing_common.events import Event, OrderCancelled, OrderCreated, OrderStatus, Subject
from ticketing_common.mongo import as_utc
from ticketing_common.service import Runtime
from ticketing_payments import refunds, repository
from ticketing_payments.charges import StripeCharger
from ticketing_payments.deps import get_charger
from ticketing_payments.money import to_cents

log = logging.getLogger("ticketing.payments.listeners")


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
    data = event.data
    replica = await repository.cancel_order(db, order_id=data.id, version=data.version)
    if replica is None:
        replica = await repository.get_order(db, order_id=data.id)
        if replica is None:
            raise RetryLater(f"order {data.id} not replicated yet")
        if replica["version"] < data.version:
            raise RetryLater(
                f"order {data.id} is at version {replica['version']}, event is {data.version}"
            )
        # A duplicate, or this event again after a RetryLater or failure below: the refund
        # check is idempotent, so it runs every time.
        log.info("order:cancelled already applied", extra={"order_id": data.id})
    if replica["status"] == OrderStatus.CANCELLED:
        await refunds.settle_cancelled_order(db, charger, replica)


def subscriptions(runtime: Runtime) -> Mapping[Subject, Handler]:
    async def order_cancelled(event: Event[OrderCancelled]) -> None:
        # The charger is built at start-up, after the subscriptions: looked up on use.
        await on_order_cancelled(runtime.db, get_charger(runtime), event)

    return {
        Subject.ORDER_CREATED: partial(on_order_created, runtime.db),
        Subject.ORDER_CANCELLED: order_cancelled,
    }
