"""Event handlers: the ticket replica, expiry and payment of orders.

Every handler is idempotent (a duplicate changes nothing and returns) and copes with events
of different subjects arriving in any order.
"""

from __future__ import annotations

import logging
from typing import Any

from ticketing_common.bus import Handler, RetryLater
from ticketing_common.events import (
    Event,
    ExpirationComplete,
    PaymentCreated,
    Subject,
    TicketCreated,
    TicketUpdated,
)
from ticketing_common.mongo import parse_object_id
from ticketing_common.service import Runtime
from ticketing_orders import repository

log = logging.getLogger("ticketing.orders")


async def on_ticket_created(runtime: Runtime, event: Event[Any]) -> None:
    data: TicketCreated = event.data
    if not await repository.insert_ticket(runtime.db, data=data):
        log.info("duplicate ticket:created ignored", extra={"ticket_id": data.id})


async def on_ticket_updated(runtime: Runtime, event: Event[Any]) -> None:
    data: TicketUpdated = event.data
    if await repository.apply_ticket_update(runtime.db, data=data):
        return
    replica = await repository.get_ticket(runtime.db, ticket_id=data.id)
    if replica is None:
        raise RetryLater(f"ticket {data.id} not replicated yet")
    if data.version <= replica["version"]:
        return  # a duplicate or an older version: already applied
    raise RetryLater(f"ticket {data.id} v{data.version} before v{replica['version'] + 1}")


async def on_expiration_complete(runtime: Runtime, event: Event[Any]) -> None:
    data: ExpirationComplete = event.data
    order_id = parse_object_id(data.order_id)
    if order_id is None:
        log.warning("expiration of a malformed order id ignored", extra={"order": data.order_id})
        return
    result, _ = await repository.cancel_order(runtime.db, order_id=order_id)
    if result is repository.CancelResult.NOT_FOUND:
        # Orders are inserted before order:created leaves, so expiration never knows of an
        # order that does not exist; nothing to cancel either way.
        log.warning("expiration of an unknown order ignored", extra={"order": data.order_id})
    elif result is repository.CancelResult.CANCELLED:
        runtime.relay.kick(repository.ORDERS, order_id)


async def on_payment_created(runtime: Runtime, event: Event[Any]) -> None:
    data: PaymentCreated = event.data
    order_id = parse_object_id(data.order_id)
    result = (
        await repository.complete_order(runtime.db, order_id=order_id)
        if order_id is not None
        else repository.CompleteResult.NOT_FOUND
    )
    if result is repository.CompleteResult.COMPLETED and order_id is not None:
        # order:completed went into the same write: out now, so payments captures at once.
        runtime.relay.kick(repository.ORDERS, order_id)
    elif result is repository.CompleteResult.CANCELLED:
        # The buyer's cancel or the expiry got here first (payments' replica lagged, or this
        # event did): the order stays cancelled, and payments voids the authorization when its
        # order:cancelled arrives. Nothing was captured, so nothing is owed.
        log.info(
            "payment for a cancelled order: its authorization is voided by payments",
            extra={"order": data.order_id, "payment": data.id, "stripe_id": data.stripe_id},
        )
    elif result is repository.CompleteResult.NOT_FOUND:
        log.warning(
            "payment for an unknown order ignored",
            extra={"order": data.order_id, "payment": data.id},
        )


def subscriptions(runtime: Runtime) -> dict[Subject, Handler]:
    async def ticket_created(event: Event[Any]) -> None:
        await on_ticket_created(runtime, event)

    async def ticket_updated(event: Event[Any]) -> None:
        await on_ticket_updated(runtime, event)

    async def expiration_complete(event: Event[Any]) -> None:
        await on_expiration_complete(runtime, event)

    async def payment_created(event: Event[Any]) -> None:
        await on_payment_created(runtime, event)

    return {
        Subject.TICKET_CREATED: ticket_created,
        Subject.TICKET_UPDATED: ticket_updated,
        Subject.EXPIRATION_COMPLETE: expiration_complete,
        Subject.PAYMENT_CREATED: payment_created,
    }
