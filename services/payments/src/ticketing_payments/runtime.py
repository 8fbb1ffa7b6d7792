"""The payments service's runtime: the shared resources, typed with its settings, and its
Stripe client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ticketing_common.service import MongoRuntime, Runtime
from ticketing_payments.charges import StripeCharger
from ticketing_payments.settings import Settings


@dataclass(frozen=True)
class PaymentsRuntime(MongoRuntime[Settings]):
    # One per process: it holds the connection pool to Stripe.
    charger: StripeCharger


@contextlib.asynccontextmanager
async def open_runtime(shared: Runtime[Settings]) -> AsyncIterator[PaymentsRuntime]:
    # Building the client loads the CA bundle from disk: off the loop.
    charger = await asyncio.to_thread(StripeCharger, shared.settings)
    try:
        yield PaymentsRuntime(**shared.shared(), charger=charger)
    finally:
        await charger.close()
