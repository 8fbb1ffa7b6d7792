"""Request and response bodies of /api/orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator

from ticketing_common.events import OrderStatus
from ticketing_common.validation import RequestBody, text_check

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
