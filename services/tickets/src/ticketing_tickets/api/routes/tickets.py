"""/api/tickets: sell, list, show and edit tickets."""

from __future__ import annotations

import re

from bson import ObjectId
from fastapi import APIRouter, status

from ticketing_common.errors import AppError, BadRequestError, NotAuthorizedError, NotFoundError
from ticketing_common.money import to_cents
from ticketing_common.mongo import parse_object_id
from ticketing_tickets import repository
from ticketing_tickets.deps import CurrentUser, RuntimeDep
from ticketing_tickets.schemas import TicketCreate, TicketPublic, TicketUpdate

router = APIRouter(prefix="/api/tickets", tags=["tickets"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
LIMIT_MESSAGE = f"Limit must be a whole number between 1 and {MAX_LIMIT}"
CURSOR_MESSAGE = "Cursor must be the id of a ticket"
# An edit that keeps losing to concurrent changes (reservations, other edits) gives up with 409
# rather than loop; each lost round means someone else's change went through.
EDIT_ATTEMPTS = 5

_DIGITS = re.compile(r"[0-9]{1,4}")


class ConflictError(AppError):
    status_code = 409


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequestError(LIMIT_MESSAGE, field="limit")
    return int(raw)


def _cursor(raw: str | None) -> ObjectId | None:
    if raw is None:
        return None
    cursor = parse_object_id(raw)
    if cursor is None:
        raise BadRequestError(CURSOR_MESSAGE, field="before")
    return cursor


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_ticket(body: TicketCreate, user: CurrentUser, runtime: RuntimeDep) -> TicketPublic:
    """Put a ticket up for sale."""
    ticket = await repository.create_ticket(
        runtime.db, title=body.title, price_cents=to_cents(body.price), user_id=user.id
    )
    runtime.relay.kick(repository.TICKETS, ticket["_id"])
    return TicketPublic.from_doc(ticket)


@router.get("")
async def list_tickets(
    runtime: RuntimeDep, limit: str | None = None, before: str | None = None
) -> list[TicketPublic]:
    """Unreserved tickets, newest first; the next page is `?before=<last id of this page>`."""
    docs = await repository.list_unreserved(runtime.db, limit=_limit(limit), before=_cursor(before))
    return [TicketPublic.from_doc(doc) for doc in docs]


@router.get("/{ticket_id}")
async def show_ticket(ticket_id: str, runtime: RuntimeDep) -> TicketPublic:
    """One ticket, reserved or not."""
    ticket = await repository.get_ticket(runtime.db, ticket_id=ticket_id)
    if ticket is None:
        raise NotFoundError()
    return TicketPublic.from_doc(ticket)


@router.put("/{ticket_id}")
async def update_ticket(
    ticket_id: str, body: TicketUpdate, user: CurrentUser, runtime: RuntimeDep
) -> TicketPublic:
    """Edit the title and price of one's own unreserved ticket."""
    for _ in range(EDIT_ATTEMPTS):
        ticket = await repository.get_ticket(runtime.db, ticket_id=ticket_id)
        if ticket is None:
            raise NotFoundError()
        if ticket["userId"] != user.id:
            raise NotAuthorizedError()
        if ticket["orderId"] is not None:
            raise BadRequestError("Cannot edit a reserved ticket")
        updated = await repository.edit_ticket(
            runtime.db, ticket=ticket, title=body.title, price_cents=to_cents(body.price)
        )
        if updated is not None:
            runtime.relay.kick(repository.TICKETS, updated["_id"])
            return TicketPublic.from_doc(updated)
        # Changed since read (an edit, a reservation): the edit replaces title and price
        # wholesale, so re-applying it to the fresh state is what the user asked for, unless
        # the ticket is now reserved, which the next round reports.
    raise ConflictError("The ticket is changing too often, try again")
