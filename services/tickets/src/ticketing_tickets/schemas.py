"""Request and response bodies of /api/tickets."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator

from ticketing_common.money import to_dollars
from ticketing_common.validation import RequestBody, money_check, text_check
from ticketing_tickets.repository import TicketDoc

TITLE_MESSAGE = "Title is required"
PRICE_MESSAGE = "Price must be greater than 0"

Title = Annotated[str, BeforeValidator(text_check(TITLE_MESSAGE))]
# Exact to the cent (a Decimal with two places): stored as integer cents, never as a float.
Price = Annotated[Decimal, BeforeValidator(money_check(PRICE_MESSAGE))]


class TicketCreate(RequestBody):
    title: Title
    price: Price


class TicketUpdate(RequestBody):
    """An edit replaces both fields, like the reference app's PUT."""

    title: Title
    price: Price


class TicketPublic(BaseModel):
    id: str
    title: str
    price: float
    userId: str
    version: int
    orderId: str | None

    @classmethod
    def from_doc(cls, doc: TicketDoc) -> TicketPublic:
        return cls(
            id=str(doc["_id"]),
            title=doc["title"],
            price=to_dollars(doc["priceCents"]),
            userId=doc["userId"],
            version=doc["version"],
            orderId=doc.get("orderId"),
        )
