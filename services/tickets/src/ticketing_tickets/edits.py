"""The owner's edit of a ticket: its title and price, replaced on its latest version.

The write itself is `repository.edit_ticket`, conditioned on the version read and on the ticket
being unreserved; losing it to a concurrent change (an edit, a reservation) means reading the
ticket again and deciding again.
"""

from __future__ import annotations

from ticketing_common.errors import NotTheOwnerError
from ticketing_common.outbox import Outbox
from ticketing_tickets import repository
from ticketing_tickets.errors import TicketBusyError, TicketNotFoundError, TicketReservedError
from ticketing_tickets.repository import TicketDoc

# An edit that keeps losing to concurrent changes (reservations, other edits) gives up rather
# than loop; each lost round means someone else's change went through.
EDIT_ATTEMPTS = 5


async def update_ticket(
    outbox: Outbox, *, ticket_id: str, user_id: str, title: str, price_cents: int
) -> TicketDoc:
    """The owner's edit of an unreserved ticket, applied to its latest version; the ticket.

    Raises TicketNotFoundError, NotTheOwnerError, TicketReservedError, or TicketBusyError when
    every attempt lost to a concurrent change.
    """
    for _ in range(EDIT_ATTEMPTS):
        ticket = await repository.get_ticket(outbox.db, ticket_id=ticket_id)
        if ticket is None:
            raise TicketNotFoundError()
        if ticket["userId"] != user_id:
            raise NotTheOwnerError()
        if ticket["orderId"] is not None:
            raise TicketReservedError()
        updated = await repository.edit_ticket(
            outbox, ticket=ticket, title=title, price_cents=price_cents
        )
        if updated is not None:
            return updated
        # Changed since read (an edit, a reservation): the edit replaces title and price
        # wholesale, so re-applying it to the fresh state is what the user asked for, unless
        # the ticket is now reserved, which the next round reports.
    raise TicketBusyError()
