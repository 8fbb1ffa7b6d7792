"""Events as the other services would publish them, with defaults for what a test leaves out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId

from ticketing_common import events as contracts
from ticketing_common.events import Event, EventData, OrderStatus, new_event

D = TypeVar("D", bound=EventData)


def _id(given: str | None) -> str:
    return given or str(ObjectId())


def ticket_created(
    ticket_id: str | None = None,
    *,
    version: int = 0,
    title: str = "concert",
    price: float = 20.0,
    user_id: str | None = None,
) -> Event[contracts.TicketCreated]:
    """ticket:created, as the tickets service announces a ticket on sale."""
    return new_event(
        contracts.TicketCreated(
            id=_id(ticket_id), version=version, title=title, price=price, user_id=_id(user_id)
        )
    )


def ticket_updated(
    ticket_id: str | None = None,
    *,
    version: int = 1,
    title: str = "concert",
    price: float = 20.0,
    user_id: str | None = None,
    order_id: str | None = None,
) -> Event[contracts.TicketUpdated]:
    return new_event(
        contracts.TicketUpdated(
            id=_id(ticket_id),
            version=version,
            title=title,
            price=price,
            user_id=_id(user_id),
            order_id=order_id,
        )
    )


def order_created(
    order_id: str | None = None,
    *,
    ticket_id: str | None = None,
    user_id: str | None = None,
    price: float = 20.0,
    status: OrderStatus = OrderStatus.CREATED,
    expires_at: datetime | None = None,
    expires_in: float = 900.0,
) -> Event[contracts.OrderCreated]:
    """order:created: the order holds its ticket until `expires_at` (default: `expires_in`
    seconds from now)."""
    return new_event(
        contracts.OrderCreated(
            id=_id(order_id),
            version=0,
            status=status,
            user_id=_id(user_id),
            expires_at=expires_at or datetime.now(UTC) + timedelta(seconds=expires_in),
            ticket=contracts.OrderTicketRef(id=_id(ticket_id), price=price),
        )
    )


def order_cancelled(
    order_id: str, *, ticket_id: str | None = None, version: int = 1
) -> Event[contracts.OrderCancelled]:
    return new_event(
        contracts.OrderCancelled(
            id=order_id,
            version=version,
            ticket=contracts.TicketRef(id=_id(ticket_id)),
        )
    )


def order_completed(
    order_id: str, *, ticket_id: str | None = None, version: int = 1
) -> Event[contracts.OrderCompleted]:
    return new_event(
        contracts.OrderCompleted(
            id=order_id,
            version=version,
            ticket=contracts.TicketRef(id=_id(ticket_id)),
        )
    )


def payment_created(
    order_id: str, *, payment_id: str | None = None, stripe_id: str = "pi_1"
) -> Event[contracts.PaymentCreated]:
    return new_event(
        contracts.PaymentCreated(id=_id(payment_id), order_id=order_id, stripe_id=stripe_id)
    )


def expiration_complete(order_id: str) -> Event[contracts.ExpirationComplete]:
    return new_event(contracts.ExpirationComplete(order_id=order_id))


def payment_window_closed(order_id: str) -> Event[contracts.PaymentWindowClosed]:
    return new_event(contracts.PaymentWindowClosed(order_id=order_id))


def redelivered(event: Event[D]) -> Event[D]:
    """The same event under a new envelope id: a redelivery or a duplicate publish, which
    JetStream's de-duplication cannot hide."""
    return event.model_copy(update={"id": uuid.uuid4().hex})


async def delivered(bus: Any, *events: Event[Any]) -> None:
    """Publish events on the in-memory bus and wait until every consumer has handled them."""
    for event in events:
        await bus.publish(event)
    await bus.drain()


async def on_sale(bus: Any, *, title: str = "concert", price: float = 20.0) -> str:
    """A ticket announced by tickets and replicated by the consumers on `bus`; its id."""
    event = ticket_created(title=title, price=price)
    await delivered(bus, event)
    return event.data.id
