"""What a service's process shares, made once at start-up: its runtime, and how routes reach it.

Each service subclasses `Runtime` (`<service>/runtime.py`) with its settings type and its own
collaborators; `OpenRuntime` builds it from the shared one, `runtime_of` hands it to a route.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from fastapi import Request

from ticketing_common.bus import Bus
from ticketing_common.mongo import Database
from ticketing_common.outbox import Outbox, OutboxRelay
from ticketing_common.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
RuntimeT = TypeVar("RuntimeT", bound="Runtime[Any]")


@dataclass(frozen=True)
class Runtime(Generic[SettingsT]):
    """What every service's process shares, created once in the lifespan.

    Each service subclasses it (`<service>/runtime.py`) with its settings type and adds its own
    collaborators as typed fields; routes get it through the service's `RuntimeDep`, event
    handlers as their first argument.
    """

    settings: SettingsT
    # The service's database (None for expiration, which has none; a service with one has a
    # `MongoRuntime`, where it is never None).
    db: Database | None
    bus: Bus
    relay: OutboxRelay
    # Writes that carry events go through it, and are published as part of the write.
    outbox: Outbox

    def shared(self) -> dict[str, Any]:
        """These fields, for a service's runtime built from them: `X(**base.shared(), ...)`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Runtime)}


@dataclass(frozen=True)
class MongoRuntime(Runtime[SettingsT]):
    """The runtime of a service with a database (`ServiceSpec.uses_mongo`): `db` is there.

    Each repository types the collections it owns (see `ticketing_common.mongo.collection`).
    """

    db: Database

    def __post_init__(self) -> None:
        if self.db is None:
            raise ValueError(f"{type(self).__name__} needs a database")


# Builds the service's runtime from the shared one, and closes its collaborators on exit.
OpenRuntime: TypeAlias = Callable[[Runtime[SettingsT]], AbstractAsyncContextManager[RuntimeT]]


def runtime_of(kind: type[RuntimeT]) -> Callable[[Request], Awaitable[RuntimeT]]:
    """The dependency that hands a route its service's runtime, typed as `kind`. Async: FastAPI
    runs a plain function dependency in its thread pool, a thread hop on every request (it was
    the largest cost of a cheap request)."""

    async def get_runtime(request: Request) -> RuntimeT:
        runtime: RuntimeT = request.app.state.runtime
        return runtime

    return get_runtime
