"""What auth refuses, each error a kind of common's (`ticketing_common.errors`), with the SPEC's
message: raised where the refusal is decided (`accounts`, `throttle`) and rendered by the one
handler as `{"errors": [{"message": ...}]}` with the kind's status, so no route translates them.
"""

from __future__ import annotations

from ticketing_common.errors import BadRequestError, TooManyRequestsError


class EmailInUseError(BadRequestError):
    """Someone already signed up with this email."""

    def __init__(self) -> None:
        super().__init__("Email in use")


class InvalidCredentialsError(BadRequestError):
    """Unknown email or wrong password: deliberately one error, answered in the same time."""

    def __init__(self) -> None:
        super().__init__("Invalid credentials")


class TooManyAttemptsError(TooManyRequestsError):
    """Over a limit of `throttle`: `retry_after` seconds until an attempt is let through again
    (the answer's Retry-After)."""
