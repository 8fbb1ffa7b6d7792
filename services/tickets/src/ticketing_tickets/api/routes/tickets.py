"""/api/tickets: sell, list, show and edit tickets.

Refusals are raised as they are decided, already the shared kinds (`ticketing_tickets.errors`,
common's NotTheOwnerError), and rendered by the one error handler.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from ticketing_common.errors import error_responses
from ticketing_common.money import to_cents
from ticketing_tickets import edits, repository
from ticketing_tickets.deps import CurrentUser, PageDep, RuntimeDep
from ticketing_tickets.errors import TicketNotFoundError
from ticketing_tickets.schemas import TicketCreate, TicketPublic, TicketUpdate

router = APIRouter(prefix="/api/tickets", tags=["tickets"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(401))
async def create_ticket(body: TicketCreate, user: CurrentUser, runtime: RuntimeDep) -> TicketPublic:
    """Put a ticket up for sale."""
    ticket = await repository.create_ticket(
        runtime.outbox, title=body.title, price_cents=to_cents(body.price), user_id=user.id
    )
    return TicketPublic.from_doc(ticket)


@router.get("")
async def list_tickets(runtime: RuntimeDep, page: PageDep) -> list[TicketPublic]:
    """Unreserved tickets, newest first; the next page is `?before=<last id of this page>`."""
    docs = await repository.list_unreserved(runtime.db, limit=page.limit, before=page.before)
    return [TicketPublic.from_doc(doc) for doc in docs]


@router.get("/{ticket_id}", responses=error_responses(404))
async def show_ticket(ticket_id: str, runtime: RuntimeDep) -> TicketPublic:
    """One ticket, reserved or not."""
    ticket = await repository.get_ticket(runtime.db, ticket_id=ticket_id)
    if ticket is None:
        raise TicketNotFoundError()
    return TicketPublic.from_doc(ticket)


@router.put("/{ticket_id}", responses=error_responses(401, 404, 409))
async def update_ticket(
    ticket_id: str, body: TicketUpdate, user: CurrentUser, runtime: RuntimeDep
) -> TicketPublic:
    """Edit the title and price of one's own unreserved ticket."""
    updated = await edits.update_ticket(
        runtime.outbox,
        ticket_id=ticket_id,
        user_id=user.id,
        title=body.title,
        price_cents=to_cents(body.price),
    )
    return TicketPublic.from_doc(updated)
