"""/api/tickets: sell, list, show and edit tickets."""

from __future__ import annotations

from fastapi import APIRouter, status

from ticketing_common.errors import (
    AppError,
    BadRequestError,
    NotAuthorizedError,
    NotFoundError,
    error_responses,
)
from ticketing_common.money import to_cents
from ticketing_tickets import repository
from ticketing_tickets.deps import CurrentUser, PageDep, RuntimeDep
from ticketing_tickets.schemas import TicketCreate, TicketPublic, TicketUpdate

router = APIRouter(prefix="/api/tickets", tags=["tickets"])


class ConflictError(AppError):
    status_code = 409


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
        raise NotFoundError()
    return TicketPublic.from_doc(ticket)


@router.put("/{ticket_id}", responses=error_responses(401, 404, 409))
async def update_ticket(
    ticket_id: str, body: TicketUpdate, user: CurrentUser, runtime: RuntimeDep
) -> TicketPublic:
    """Edit the title and price of one's own unreserved ticket."""
    try:
        updated = await repository.update_ticket(
            runtime.outbox,
            ticket_id=ticket_id,
            user_id=user.id,
            title=body.title,
            price_cents=to_cents(body.price),
        )
    except repository.TicketNotFoundError:
        raise NotFoundError() from None
    except repository.NotTheOwnerError:
        raise NotAuthorizedError() from None
    except repository.TicketReservedError:
        raise BadRequestError("Cannot edit a reserved ticket") from None
    except repository.TicketBusyError:
        raise ConflictError("The ticket is changing too often, try again") from None
    return TicketPublic.from_doc(updated)
