"""The pages that answer a failure, and which failure gets which: not found, something went
wrong, a form refused (CSRF), the API restarting, and signing in first."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketing_client.api import ApiUnavailableError
from ticketing_client.csrf import CsrfRefusedError
from ticketing_client.pages.rendering import render, to_signin
from ticketing_client.pages.session import SignInRequiredError, current_user

log = logging.getLogger("ticketing_client")


async def not_found(request: Request) -> Response:
    try:
        user = await current_user(request)
    except ApiUnavailableError:
        user = None
    return render(request, "not_found.html", user, 404, title="Page not found")


def error_page(request: Request, status_code: int) -> Response:
    return render(
        request, "error.html", None, status_code, show_nav=False, title="Something went wrong"
    )


def forbidden_page(request: Request) -> Response:
    """A form sent without this browser's CSRF token (csrf.py): no API call was made."""
    return render(
        request, "forbidden.html", None, 403, show_nav=False, title="This form has expired"
    )


def unavailable_page(request: Request) -> Response:
    response = render(
        request, "unavailable.html", None, 503, show_nav=False, title="Back in a moment"
    )
    response.headers["retry-after"] = "5"
    return response


def install_error_pages(app: FastAPI) -> None:
    """Answer every failure of a page with one of these pages, never a traceback."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return await not_found(request)
        return error_page(request, exc.status_code)

    @app.exception_handler(SignInRequiredError)
    async def sign_in_first(request: Request, exc: SignInRequiredError) -> Response:
        return to_signin(request)

    @app.exception_handler(CsrfRefusedError)
    async def csrf_refused(request: Request, exc: CsrfRefusedError) -> Response:
        log.warning("form refused", extra={"path": request.url.path, "reason": str(exc)})
        return forbidden_page(request)

    @app.exception_handler(ApiUnavailableError)
    async def api_unavailable(request: Request, exc: ApiUnavailableError) -> Response:
        log.warning("api unavailable", extra={"path": request.url.path, "reason": str(exc)})
        return unavailable_page(request)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("page failed", extra={"path": request.url.path})
        return error_page(request, 500)
