"""The gate in front of every /v1 request: the failures a test injected, then the API key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from ticketing_fakestripe.calls import fake_of
from ticketing_fakestripe.errors import stripe_error
from ticketing_fakestripe.wire import respond


async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: an injected failure before or after the request runs, or a 401 for a
    key that is not a test-mode one (`Bearer sk_test_...`)."""
    if not request.url.path.startswith("/v1/"):
        return await call_next(request)
    injected = (await fake_of(request)).admit(request.url.path)
    if injected is not None and not injected.after_commit:
        return respond(injected.status, stripe_error("api_error", "Injected failure"))
    if not request.headers.get("authorization", "").startswith("Bearer sk_test_"):
        return respond(401, stripe_error("invalid_request_error", "Invalid API Key provided"))
    response = await call_next(request)
    if injected is None:
        return response
    # Carried out, and its answer lost on the way back.
    body = getattr(response, "body_iterator", None)
    if body is not None:
        async for _ in body:
            pass
    return respond(injected.status, stripe_error("api_error", "Injected failure"))
