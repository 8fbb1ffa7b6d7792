"""The tickets service's runtime: the shared resources, typed with its settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ticketing_common.service import MongoRuntime, Runtime
from ticketing_tickets import repository
from ticketing_tickets.settings import Settings


@dataclass(frozen=True)
class TicketsRuntime(MongoRuntime[Settings]):
    """Nothing of its own: tickets has no collaborators besides Mongo, the bus and the outbox."""


@contextlib.asynccontextmanager
async def open_runtime(shared: Runtime[Settings]) -> AsyncIterator[TicketsRuntime]:
    runtime = TicketsRuntime(**shared.shared())
    await repository.add_list_keys(runtime.db)
    yield runtime
