"""The auth service's runtime: the shared resources, typed with its settings, and the
throttle of sign-ins and sign-ups."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ticketing_auth import passwords
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import Throttle
from ticketing_common.service import MongoRuntime, Runtime


@dataclass(frozen=True)
class AuthRuntime(MongoRuntime[Settings]):
    # Counts sign-in and sign-up attempts (in Redis), before any password is hashed.
    throttle: Throttle


@contextlib.asynccontextmanager
async def open_runtime(shared: Runtime[Settings]) -> AsyncIterator[AuthRuntime]:
    # The dummy hash at start-up, not on the first unknown-email sign-in.
    await passwords.warm_up()
    throttle = Throttle(shared.settings)
    try:
        yield AuthRuntime(**shared.shared(), throttle=throttle)
    finally:
        await throttle.close()
