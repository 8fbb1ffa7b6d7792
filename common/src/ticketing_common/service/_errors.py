"""How every failure leaves a service: the SPEC's `{"errors": [...]}` shape, traces in the log.

One handler answers every `AppError` (`ticketing_common.errors`) with its status, message and
headers; the framework's own errors (a body or query that fails validation, an unknown route, a
wrong method) get the same shape; whatever else escapes a route is a generic 500, or a 503 when
it is our database or bus that is down (`UnhandledErrors`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from ticketing_common.asgi import HttpMiddleware, TrackedSend
from ticketing_common.bus import is_infrastructure_failure
from ticketing_common.errors import AppError, error_body

log = logging.getLogger("ticketing.errors")

SERVER_ERROR = "Something went wrong on our side"
INVALID_JSON = "Request body must be valid JSON"
UNAVAILABLE = "Service temporarily unavailable, try again"
FASTAPI_BODY_ERROR = "There was an error parsing the body"


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
