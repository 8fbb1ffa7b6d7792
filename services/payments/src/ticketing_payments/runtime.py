"""The payments service's runtime: the shared resources, typed with its settings, its Stripe
client, and the sweep that closes overdue orders' windows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ticketing_common.periodic import Periodic
from ticketing_common.service import MongoRuntime, Runtime
from ticketing_payments import windows
from ticketing_payments.charges import StripeCharger
from ticketing_payments.settings import Settings


@dataclass(frozen=True)
class PaymentsRuntime(MongoRuntime[Settings]):
    # One per process: it holds the connection pool to Stripe.
    charger: StripeCharger
    sweeper: Periodic


@contextlib.asynccontextmanager
async def open_runtime(shared: Runtime[Settings]) -> AsyncIterator[PaymentsRuntime]:
    # Building the client loads the CA bundle from disk: off the loop.
    charger = await asyncio.to_thread(StripeCharger, shared.settings)
    sweeper = windows.sweeper(shared.outbox, shared.settings)
    sweeper.start()
    try:
        yield PaymentsRuntime(**shared.shared(), charger=charger, sweeper=sweeper)
    finally:
        await sweeper.stop()
        await charger.close()
