"""Event handlers: the ticket replica, and an order's end as payments tells it: paid
(payment:created) or its window to pay closed unpaid (payment:window-closed, see `expiry`).

Every handler is idempotent (a duplicate changes nothing and returns) and copes with events
of different subjects arriving in any order.
"""

from __future__ import annotations

import logging

from ticketing_common.bus import RetryLater
from ticketing_common.events import (
    Event,
    PaymentCreated,
    PaymentWindowClosed,
    TicketCreated,
    TicketUpdated,
)
from ticketing_common.mongo import parse_object_id
from ticketing_common.service import Handlers, handles
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


async def on_payment_window_closed(
    runtime: OrdersRuntime, event: Event[PaymentWindowClosed]
) -> None:
    data = event.data
    order_id = parse_object_id(data.order_id)
    result = (
        (await state.cancel_order(runtime.outbox, order_id=order_id))[0]
        if order_id is not None
        else state.CancelResult.NOT_FOUND
    )
    if result is state.CancelResult.COMPLETE:
        # Payments closes a window only when it holds no payment for the order, and orders
        # completes an order only on a payment: these two never both happen.
        log.error("window closed for a complete order", extra={"order": data.order_id})
    elif result is state.CancelResult.NOT_FOUND:
        # Payments knows only orders announced by order:created, written after the order.
        log.warning("window closed for an unknown order ignored", extra={"order": data.order_id})


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
        # The buyer's cancel got here first (payments' replica lagged, or this event did; an
        # expiry cannot, as payments closes a window only without a payment): the order stays
        # cancelled, and payments voids the authorization when its
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


HANDLERS: Handlers[OrdersRuntime] = Handlers(
    handles(TicketCreated, on_ticket_created),
    handles(TicketUpdated, on_ticket_updated),
    handles(PaymentCreated, on_payment_created),
    handles(PaymentWindowClosed, on_payment_window_closed),
)
