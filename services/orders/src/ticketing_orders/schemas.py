"""Request and response bodies of /api/orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator

from ticketing_common.events import OrderStatus
from ticketing_common.money import to_dollars
from ticketing_common.mongo import as_utc
from ticketing_common.validation import RequestBody, text_check
from ticketing_orders.replica import TicketReplicaDoc
from ticketing_orders.repository import OrderDoc

TicketIdField = Annotated[str, BeforeValidator(text_check("TicketId must be provided"))]


class OrderCreate(RequestBody):
    ticketId: TicketIdField


class OrderTicket(BaseModel):
    id: str
    title: str
    price: float
    version: int


class OrderPublic(BaseModel):
    id: str
    userId: str
    status: OrderStatus
    expiresAt: datetime
    version: int
    ticket: OrderTicket

    @classmethod
    def from_docs(cls, order: OrderDoc, ticket: TicketReplicaDoc | None) -> OrderPublic:
        """The order as the API shows it: the price is what this order is charged, even if the
        ticket's price changed since."""
        return cls(
            id=str(order["_id"]),
            userId=order["userId"],
            status=order["status"],
            expiresAt=as_utc(order["expiresAt"]),
            version=order["version"],
            ticket=OrderTicket(
                id=order["ticketId"],
                # Replicas are never deleted, so a missing one cannot happen; still answer.
                title=ticket["title"] if ticket is not None else "",
                price=to_dollars(order["priceCents"]),
                version=ticket["version"] if ticket is not None else 0,
            ),
        )
