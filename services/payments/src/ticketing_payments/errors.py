"""What payments refuses, each error a kind of common's (`ticketing_common.errors`), with the
SPEC's message: raised where the refusal is decided and rendered by the one handler as
`{"errors": [{"message": ...}]}` with the kind's status, so no route translates them.

Not the buyer of the order is common's `NotTheOwnerError` itself (401 "Not authorized"); Stripe's
refusals and outages are `charges`' BadRequestError and UpstreamError.
"""

from __future__ import annotations

from ticketing_common.errors import BadRequestError, NotFoundError


class OrderNotFoundError(NotFoundError):
    """No such order in the replica (404 "Not Found", as for any unknown id)."""


class NotPayableError(BadRequestError):
    """The order cannot be paid (now); the message is what the buyer is shown."""
