"""The errors a client may see, and the SPEC's `{"errors": [...]}` shape they take.

A kernel module: routes, repositories and the auth dependency raise these, and the OpenAPI
documents describe their shape, without importing any engine of common (the bus, the outbox,
the service factory). The one handler that turns every `AppError` into its HTTP answer, and
the handlers of the framework's own errors, are the service factory's
(`ticketing_common.service`).
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

__all__ = [
    "ERROR_DESCRIPTIONS",
    "AppError",
    "BadRequestError",
    "ConflictError",
    "ErrorBody",
    "ErrorItem",
    "NotAuthorizedError",
    "NotFoundError",
    "NotTheOwnerError",
    "TooManyRequestsError",
    "UpstreamError",
    "error_body",
    "error_responses",
]


class AppError(Exception):
    """An error a client caused or may see; rendered as `{"errors": [{message, field?}]}`."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        # Response headers that go with it (a 429's Retry-After).
        self.headers: dict[str, str] = {}

    def serialize(self) -> list[dict[str, str]]:
        item = {"message": self.message}
        if self.field:
            item["field"] = self.field
        return [item]


class BadRequestError(AppError):
    status_code = 400


class NotAuthorizedError(AppError):
    status_code = 401

    def __init__(self, message: str = "Not authorized") -> None:
        super().__init__(message)


class NotTheOwnerError(NotAuthorizedError):
    """Signed in, but the record is someone else's (the SPEC answers 401, as the course app)."""


class NotFoundError(AppError):
    """No such record (a malformed id included); the message says nothing more than that."""

    status_code = 404

    def __init__(self, message: str = "Not Found") -> None:
        super().__init__(message)


class ConflictError(AppError):
    """A concurrent change won the race for the same record: nothing was written, try again."""

    status_code = 409


class TooManyRequestsError(AppError):
    """Too many attempts from one client address or at one account: try again later."""

    status_code = 429

    def __init__(self, retry_after: int) -> None:
        seconds = max(1, retry_after)
        unit = "second" if seconds == 1 else "seconds"
        super().__init__(f"Too many attempts, please try again in {seconds} {unit}")
        self.retry_after = seconds
        self.headers = {"Retry-After": str(seconds)}


class UpstreamError(AppError):
    """A dependency we cannot do without (a payment provider) failed; not the client's fault."""

    def __init__(self, message: str, *, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code


# --- the error shape in the OpenAPI documents ---------------------------------------------------


class ErrorItem(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    message: Annotated[str, Field(min_length=1)]
    # Only for a validation error: the field (dotted path) it is about.
    field: NotRequired[str]


class ErrorBody(BaseModel):
    """Every error answer: `{"errors": [{"message": ..., "field"?: ...}]}`."""

    model_config = ConfigDict(extra="forbid")

    errors: Annotated[list[ErrorItem], Field(min_length=1)]


# What each error status means, the same words in every service's documentation.
ERROR_DESCRIPTIONS = {
    400: "Bad input (each message names its field) or a business rule",
    401: "Not signed in, or not the owner",
    404: "No such resource (a malformed id included)",
    409: "A concurrent change won; try again",
    413: "Request body too large",
    429: "Too many attempts; Retry-After says how many seconds to wait",
    502: "A provider this service depends on failed",
    503: "Busy, or a dependency is down for a moment; try again (Retry-After)",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route for the error statuses it answers, in the common shape."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        response: dict[str, Any] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]}
        if code in (429, 503):
            response["headers"] = _RETRY_AFTER
        responses[code] = response
    return responses


def error_body(message: str, field: str | None = None) -> dict[str, list[dict[str, str]]]:
    """One error as the body of an answer: `{"errors": [{"message": ..., "field"?: ...}]}`."""
    item = {"message": message}
    if field:
        item["field"] = field
    return {"errors": [item]}
