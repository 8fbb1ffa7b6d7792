"""The auth service's runtime: the shared resources, typed with its settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ticketing_auth import passwords
from ticketing_auth.settings import Settings
from ticketing_common.service import MongoRuntime, Runtime


@dataclass(frozen=True)
class AuthRuntime(MongoRuntime[Settings]):
    """Nothing of its own: auth has no collaborators besides Mongo and the outbox."""


@contextlib.asynccontextmanager
async def open_runtime(shared: Runtime[Settings]) -> AsyncIterator[AuthRuntime]:
    # The dummy hash at start-up, not on the first unknown-email sign-in.
    await passwords.warm_up()
    yield AuthRuntime(**shared.shared())
