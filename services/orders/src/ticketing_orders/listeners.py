"""Event handlers: the ticket replica, expiry and payment of orders.

Every handler is idempotent (a duplicate changes nothing and returns) and copes with events
of different subjects arriving in any order.
"""

from __future__ import annotations

import logging

from ticketing_common.bus import RetryLater
from ticketing_common.events import (
    Event,
    ExpirationComplete,
    PaymentCreated,
    Subject,
    TicketCreated,
    TicketUpdated,
)
from ticketing_common.mongo import parse_object_id
from ticketing_common.service import EventHandler
from ticketing_orders import replica, state
from ticketing_orders.runtime import OrdersRuntime

log = logging.getLogger("ticketing.orders")


async def on_ticket_created(runtime: OrdersRuntime, event: Event[TicketCreated]) -> None:
    data = event.data
    if not await replica.insert_ticket(runtime.db, data=data):
        log.info("duplicate ticket:created ignored", extra={"ticket_id": data.id})


async def on_ticket_updated(runtime: OrdersRuntime, event: Event[TicketUpdated]) -> None:
    data = event.data
    if await replica.apply_ticket_update(runtime.db, data=data):
        return
    ticket = await replica.get_ticket(runtime.db, ticket_id=data.id)
    if ticket is None:
        raise RetryLater(f"ticket {data.id} not replicated yet")
    if data.version <= ticket["version"]:
        return  # a duplicate or an older version: already applied
    raise RetryLater(f"ticket {data.id} v{data.version} before v{ticket['version'] + 1}")


async def on_expiration_complete(runtime: OrdersRuntime, event: Event[ExpirationComplete]) -> None:
    data = event.data
    order_id = parse_object_id(data.order_id)
    if order_id is None:
        log.warning("expiration of a malformed order id ignored", extra={"order": data.order_id})
        return
    result, _ = await state.cancel_order(runtime.outbox, order_id=order_id)
    if result is state.CancelResult.NOT_FOUND:
        # Orders are inserted before order:created leaves, so expiration never knows of an
        # order that does not exist; nothing to cancel either way.
        log.warning("expiration of an unknown order ignored", extra={"order": data.order_id})


async def on_payment_created(runtime: OrdersRuntime, event: Event[PaymentCreated]) -> None:
    data = event.data
    order_id = parse_object_id(data.order_id)
    # order:completed goes out with the write, so payments captures at once.
    result = (
        await state.complete_order(runtime.outbox, order_id=order_id)
        if order_id is not None
        else state.CompleteResult.NOT_FOUND
    )
    if result is state.CompleteResult.CANCELLED:
        # The buyer's cancel or the expiry got here first (payments' replica lagged, or this
        # event did): the order stays cancelled, and payments voids the authorization when its
        # order:cancelled arrives. Nothing was captured, so nothing is owed.
        log.info(
            "payment for a cancelled order: its authorization is voided by payments",
            extra={"order": data.order_id, "payment": data.id, "stripe_id": data.stripe_id},
        )
    elif result is state.CompleteResult.NOT_FOUND:
        log.warning(
            "payment for an unknown order ignored",
            extra={"order": data.order_id, "payment": data.id},
        )


HANDLERS: dict[Subject, EventHandler[OrdersRuntime]] = {
    Subject.TICKET_CREATED: on_ticket_created,
    Subject.TICKET_UPDATED: on_ticket_updated,
    Subject.EXPIRATION_COMPLETE: on_expiration_complete,
    Subject.PAYMENT_CREATED: on_payment_created,
}
