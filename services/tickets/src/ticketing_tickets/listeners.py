"""Reserve and release tickets from order events.

order:created and order:cancelled come from separate durable consumers, so they arrive in any
order and possibly more than once. The ticket itself remembers what has been applied: `orderId`
(the live reservation) and the list of cancelled orders, so every handler can tell a duplicate
(return), an event that came too early (RetryLater) and one to apply. Each state change and its
ticket:updated are one conditional write; losing a race to another writer means re-reading and
deciding again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from ticketing_common.bus import RetryLater
from ticketing_common.events import Event, OrderCancelled, OrderCreated, Subject
from ticketing_common.mongo import Database
from ticketing_common.service import Handlers, handles
from ticketing_tickets import repository
from ticketing_tickets.runtime import TicketsRuntime

log = logging.getLogger("ticketing.tickets.listeners")

# Rounds of read-decide-write before handing the event back to the bus; each lost round means
# another writer's change to the same ticket went through.
ATTEMPTS = 10


class UnknownTicketError(LookupError):
    """An order refers to a ticket this service never had: a bug upstream, not a delay."""


async def _rounds(
    db: Database, *, ticket_id: str, order_id: str, subject: Subject
) -> AsyncIterator[repository.TicketDoc]:
    """The ticket, read afresh for each round of read-decide-write; the caller returns once
    its decision is applied. Running out of rounds hands the event back to the bus."""
    for _ in range(ATTEMPTS):
        ticket = await repository.get_ticket(db, ticket_id=ticket_id)
        if ticket is None:
            # Orders only sells tickets it learned from our ticket:created, so waiting cannot
            # help; failing sends the event to the dead letters after the last delivery.
            log.error(
                "order refers to an unknown ticket",
                extra={"subject": str(subject), "ticket_id": ticket_id, "order_id": order_id},
            )
            raise UnknownTicketError(
                f"unknown ticket {ticket_id!r} in {subject} of order {order_id}"
            )
        yield ticket
    raise RetryLater(f"ticket {ticket_id} kept changing")


def _applied(what: str, ticket: repository.TicketDoc, order_id: str) -> None:
    extra = {"ticket_id": str(ticket["_id"]), "order_id": order_id, "version": ticket["version"]}
    log.info(what, extra=extra)


async def reserve(runtime: TicketsRuntime, data: OrderCreated) -> None:
    """Reserve the ticket for the new order, unless that order is already gone."""
    order_id, ticket_id = data.id, data.ticket.id
    async for ticket in _rounds(
        runtime.db, ticket_id=ticket_id, order_id=order_id, subject=Subject.ORDER_CREATED
    ):
        if ticket["orderId"] == order_id:
            return  # duplicate delivery
        if order_id in repository.released_ids(ticket):
            return  # its order:cancelled came first: the order is dead, nothing to hold
        if ticket["orderId"] is not None:
            # The previous order's cancellation has not reached us yet; Orders only creates an
            # order for a ticket it saw free, so that cancellation is on its way.
            raise RetryLater(f"ticket {ticket_id} still held by order {ticket['orderId']}")
        reserved = await repository.reserve_ticket(runtime.outbox, ticket=ticket, order_id=order_id)
        if reserved is not None:
            _applied("ticket reserved", reserved, order_id)
            return


async def release(runtime: TicketsRuntime, data: OrderCancelled) -> None:
    """Free the ticket if this order holds it; either way remember the order is cancelled."""
    order_id, ticket_id = data.id, data.ticket.id
    # How long a late order:created can still arrive: what is older is forgotten (RELEASED).
    # Twice the retry horizon: an event may also have waited behind a backlog before its
    # deferrals started counting towards it.
    horizon = timedelta(seconds=2 * runtime.settings.nats_retry_horizon_seconds)
    async for ticket in _rounds(
        runtime.db, ticket_id=ticket_id, order_id=order_id, subject=Subject.ORDER_CANCELLED
    ):
        if ticket["orderId"] == order_id:
            released = await repository.release_ticket(
                runtime.outbox, ticket=ticket, order_id=order_id, horizon=horizon
            )
            if released is not None:
                _applied("ticket released", released, order_id)
                return
            continue
        if order_id in repository.released_ids(ticket):
            return  # duplicate delivery
        # Not held by this order: its order:created is still on its way (or never reserved).
        if await repository.remember_released(
            runtime.db, ticket=ticket, order_id=order_id, horizon=horizon
        ):
            log.info(
                "cancelled order remembered before its reservation",
                extra={"ticket_id": ticket_id, "order_id": order_id},
            )
            return


async def on_order_created(runtime: TicketsRuntime, event: Event[OrderCreated]) -> None:
    await reserve(runtime, event.data)


async def on_order_cancelled(runtime: TicketsRuntime, event: Event[OrderCancelled]) -> None:
    await release(runtime, event.data)


HANDLERS: Handlers[TicketsRuntime] = Handlers(
    handles(OrderCreated, on_order_created),
    handles(OrderCancelled, on_order_cancelled),
)
