"""How a route reaches the fake: the state its app holds, and a /v1 POST run against it (the
API version's refusals, the idempotency key, the `Idempotent-Replayed` header)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from ticketing_fakestripe.errors import Json, Rejected
from ticketing_fakestripe.ledger import Ledger, Operation
from ticketing_fakestripe.state import FakeState
from ticketing_fakestripe.wire import respond

# From this API version on (stripe-python 16 pins 2026-10-28), `payment_method_types` is no
# longer writable: Stripe answers 400 `payment_method_types_no_longer_supported`.
TYPES_REMOVED_IN = "2026-09-30"


async def fake_of(request: Request) -> FakeState:
    """The state of the app serving the request (async: no thread hop for a lookup)."""
    fake: FakeState = request.app.state.fake
    return fake


Fake = Annotated[FakeState, Depends(fake_of)]


async def execute(request: Request, operation: Operation) -> Response:
    """Run the POST `operation` on the request's form, as the API version it asks for."""
    version = request.headers.get("stripe-version", "")

    def versioned(ledger: Ledger, params: Json) -> tuple[int, Json]:
        if "payment_method_types" in params and version >= TYPES_REMOVED_IN:
            raise Rejected(
                "The `payment_method_types` parameter is not supported in API version "
                f"{version}. Use `automatic_payment_methods` or "
                "`allowed_payment_method_types` instead.",
                "payment_method_types",
                code="payment_method_types_no_longer_supported",
            )
        return operation(ledger, params)

    fake = await fake_of(request)
    status, body, replayed = fake.execute(
        versioned,
        await request.body(),
        endpoint=request.url.path,
        key=request.headers.get("idempotency-key"),
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return respond(status, body, headers=headers)
