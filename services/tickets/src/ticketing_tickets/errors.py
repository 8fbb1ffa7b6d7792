"""What tickets refuses, each error a kind of common's (`ticketing_common.errors`), with the
SPEC's message: raised where the refusal is decided and rendered by the one handler as
`{"errors": [{"message": ...}]}` with the kind's status, so no route translates them.

Not the owner of a ticket is common's `NotTheOwnerError` itself (401 "Not authorized").
"""

from __future__ import annotations

from ticketing_common.errors import BadRequestError, ConflictError, NotFoundError


class TicketNotFoundError(NotFoundError):
    """No such ticket, a malformed id included (404 "Not Found", as for any unknown id)."""


class TicketReservedError(BadRequestError):
    """An order holds the ticket: its owner cannot edit it meanwhile."""

    def __init__(self) -> None:
        super().__init__("Cannot edit a reserved ticket")


class TicketBusyError(ConflictError):
    """The ticket changed under every one of `edits.EDIT_ATTEMPTS` edits."""

    def __init__(self) -> None:
        super().__init__("The ticket is changing too often, try again")
