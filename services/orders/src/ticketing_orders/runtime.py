"""The orders service's runtime: the shared resources, typed with its settings, and the task
that sweeps reservations nobody confirmed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ticketing_common.periodic import Periodic
from ticketing_common.service import MongoRuntime, Runtime
from ticketing_orders import expiry
from ticketing_orders.settings import Settings


@dataclass(frozen=True)
class OrdersRuntime(MongoRuntime[Settings]):
    sweeper: Periodic


@contextlib.asynccontextmanager
async def open_runtime(shared: Runtime[Settings]) -> AsyncIterator[OrdersRuntime]:
    sweeper = expiry.sweeper(shared.outbox.db, shared.settings)
    sweeper.start()
    try:
        yield OrdersRuntime(**shared.shared(), sweeper=sweeper)
    finally:
        await sweeper.stop()
