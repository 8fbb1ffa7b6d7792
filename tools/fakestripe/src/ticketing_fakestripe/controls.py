"""The test controls (not Stripe's API): `/_fake/fail` injects failures, `/_fake/reset`
forgets everything."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from ticketing_fakestripe.calls import Fake
from ticketing_fakestripe.errors import Json

router = APIRouter(prefix="/_fake")


class FailureInjection(BaseModel):
    count: int = 1
    status: int = 500
    after_commit: bool = False
    path: str | None = None


@router.post("/fail")
async def fail(body: FailureInjection, fake: Fake) -> Json:
    """Fail the next `count` /v1 requests with `status`."""
    fake.fail_next(body.count, body.status, after_commit=body.after_commit, path=body.path)
    return {"ok": True}


@router.post("/reset")
async def reset(fake: Fake) -> Json:
    """Forget every PaymentIntent, refund, idempotency key and injected failure."""
    fake.reset()
    return {"ok": True}
