"""Errors and the handlers that give every failure the SPEC's `{"errors": [...]}` shape."""

from __future__ import annotations

import logging
from typing import Annotated, Any, NotRequired

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send
from typing_extensions import TypedDict

from ticketing_common.asgi import HttpMiddleware, TrackedSend
from ticketing_common.bus.base import is_infrastructure_failure

log = logging.getLogger("ticketing.errors")

SERVER_ERROR = "Something went wrong on our side"
INVALID_JSON = "Request body must be valid JSON"
UNAVAILABLE = "Service temporarily unavailable, try again"
FASTAPI_BODY_ERROR = "There was an error parsing the body"


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
    item = {"message": message}
    if field:
        item["field"] = field
    return {"errors": [item]}


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        kind = err.get("type", "")
        field = ".".join(loc)
        if kind == "json_invalid":
            message, field = INVALID_JSON, ""
        elif kind == "missing" and not field:
            message = "Request body is required"
        elif kind in ("model_type", "model_attributes_type", "dict_type") and not field:
            message = "Request body must be a JSON object"
        else:
            # Our field validators raise PydanticCustomError with the SPEC's exact message;
            # anything else (a query parameter of the wrong type, say) keeps pydantic's text.
            message = str(err.get("msg", "Invalid value"))
        key = (message, field)
        if key in seen:
            continue
        seen.add(key)
        item = {"message": message}
        if field:
            item["field"] = field
        out.append(item)
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the service as `{"errors": [...]}`; traces go to the log only."""

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(
            {"errors": exc.serialize()}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"errors": _validation_errors(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "Not Found" if exc.status_code == 404 else str(exc.detail)
        if message == FASTAPI_BODY_ERROR:
            # JSON the decoder gave up on (a number of thousands of digits, nesting deeper
            # than its recursion limit): to the client, as invalid as any other bad JSON.
            message = INVALID_JSON
        headers: Any = getattr(exc, "headers", None)
        return JSONResponse(error_body(message), status_code=exc.status_code, headers=headers)

    app.add_middleware(UnhandledErrors)


class UnhandledErrors(HttpMiddleware):
    """A bug in a route is a generic 500 and one log line with its trace.

    Not a handler for `Exception`: Starlette runs those in its outermost middleware, which
    re-raises after answering, so the server logged every error a second time ("Exception in
    ASGI application") and closed the keep-alive connection under the client's feet (the next
    request a proxy sent on it failed). Here the error is answered and stops.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if tracked.started:
                # Half a response is out: only closing the connection can tell the client, and
                # the server does that (and logs the error) when the exception reaches it.
                raise
            where = {"path": scope.get("path"), "method": scope.get("method")}
            if is_infrastructure_failure(exc):
                # Our database or bus is down: not a bug, and the client may simply try again.
                log.warning("dependency unavailable", extra={**where, "error": repr(exc)})
                response = JSONResponse(
                    error_body(UNAVAILABLE), status_code=503, headers={"Retry-After": "1"}
                )
            else:
                log.exception("unhandled error", extra=where)
                response = JSONResponse(error_body(SERVER_ERROR), status_code=500)
            await response(scope, receive, send)
