"""The auth service's runtime: the shared resources, typed with its settings, and the
throttle of sign-ins and sign-ups."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ticketing_auth.passwords import Passwords
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import Throttle
from ticketing_common.service import MongoRuntime, Runtime


@dataclass(frozen=True)
class AuthRuntime(MongoRuntime[Settings]):
    passwords: Passwords
    # Counts sign-in and sign-up attempts (in Redis), before any password is hashed.
    throttle: Throttle


@contextlib.asynccontextmanager
async def open_runtime(shared: Runtime[Settings]) -> AsyncIterator[AuthRuntime]:
    settings = shared.settings
    passwords = Passwords(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    # The dummy hash at start-up, not on the first unknown-email sign-in.
    await passwords.warm_up()
    throttle = Throttle(shared.settings)
    try:
        yield AuthRuntime(**shared.shared(), passwords=passwords, throttle=throttle)
    finally:
        await throttle.close()
        passwords.close()
