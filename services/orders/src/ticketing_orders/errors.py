"""What orders refuses, each error a kind of common's (`ticketing_common.errors`), with the
SPEC's message: raised where the refusal is decided and rendered by the one handler as
`{"errors": [{"message": ...}]}` with the kind's status, so no route translates them.

Not the owner of an order is common's `NotTheOwnerError` itself (401 "Not authorized").
"""

from __future__ import annotations

from ticketing_common.errors import BadRequestError, NotFoundError


class OrderNotFoundError(NotFoundError):
    """No such order, a malformed id included (404 "Not Found", as for any unknown id)."""


class TicketNotFoundError(NotFoundError):
    """The ticket to order is unknown here: its ticket:created never reached the replica."""


class TicketReservedError(BadRequestError):
    """Another order that stands holds the ticket (see `reservations`)."""

    def __init__(self) -> None:
        super().__init__("Ticket is already reserved")


class TooManyOpenOrdersError(BadRequestError):
    """The buyer already holds `limit` open orders (MAX_OPEN_ORDERS_PER_USER, see `buyers`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"You already hold {limit} open orders; pay for or cancel one first")
        self.limit = limit


class OrderCompleteError(BadRequestError):
    """A complete (paid) order cannot be cancelled."""

    def __init__(self) -> None:
        super().__init__("Cannot cancel a completed order")
