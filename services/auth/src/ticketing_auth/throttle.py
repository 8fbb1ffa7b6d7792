"""Rate limits on signing in and signing up, so that a few clients cannot keep the service's
cores busy hashing passwords (each Argon2id hash costs tens of ms of a core and
`ARGON2_MEMORY_KIB` of memory).

Each attempt counts against its client address and against the email it names (a digest of it:
no address book in Redis), in moving windows (`limits`, e.g. "10/minute;100/hour"), before any
password is hashed. An attempt over a limit is refused with `TooManyAttemptsError` and the
seconds until the window lets one through again; refused attempts are not counted, so a client
that keeps trying still gets its quota once the window moves on.

The counts live in Redis so that every replica shares them. When Redis is down the limits still
hold, counted in this process alone (each replica then lets the full quota through), and Redis
is tried again after `rate_limit_redis_retry_seconds`: fail open to a local count rather than
closed, because signing in must not become impossible when a cache is down, and rather than
not at all, because an outage of Redis must not be the moment the password hasher is open to
everyone. The switch is logged both ways. `REDIS_URL=memory://` counts in the process only (a
single replica, the tests).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ticketing_auth.settings import Settings

log = logging.getLogger("ticketing.auth.throttle")

Action = Literal["signin", "signup"]
IN_PROCESS = "memory://"
# A limiter that cannot answer within this is treated as down: a sign-in waits no longer.
REDIS_TIMEOUT_SECONDS = 0.25


class TooManyAttemptsError(Exception):
    """Over a limit: `retry_after` seconds until an attempt is let through again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    """The limits of one action, per client address and per email."""

    per_address: list[RateLimitItem]
    per_email: list[RateLimitItem]


def limits_of(settings: Settings) -> dict[Action, Limits]:
    return {
        "signin": Limits(
            parse_many(settings.rate_limit_signin_per_address),
            parse_many(settings.rate_limit_signin_per_email),
        ),
        "signup": Limits(
            parse_many(settings.rate_limit_signup_per_address),
            parse_many(settings.rate_limit_signup_per_email),
        ),
    }


def _digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def _redis_pool(url: str) -> ConnectionPool:
    return ConnectionPool.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        # No retries with backoff (redis-py's default takes seconds): down is down, at once.
        retry=Retry(NoBackoff(), 0),
    )


class Throttle:
    def __init__(self, settings: Settings) -> None:
        self.limits = limits_of(settings)
        self.retry_seconds = settings.rate_limit_redis_retry_seconds
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.pool: ConnectionPool | None = None
        self.shared: MovingWindowRateLimiter | None = None
        if settings.redis_url != IN_PROCESS:
            self.pool = _redis_pool(settings.redis_url)
            options: dict[str, Any] = {"connection_pool": self.pool}
            storage = RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="ticketing-auth-limits",
                **options,
            )
            self.shared = MovingWindowRateLimiter(storage)
        self._redis_down_until = 0.0
        self._degraded = False

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()

    async def attempt(self, action: Action, *, address: str, email: str) -> None:
        """Count an attempt; TooManyAttemptsError when a limit is reached (that limit's count
        unchanged)."""
        limits = self.limits[action]
        keys = [(item, (action, "address", address[:64])) for item in limits.per_address]
        keys += [(item, (action, "email", _digest(email))) for item in limits.per_email]
        for item, identifiers in keys:
            retry_after = await self._hit(item, identifiers)
            if retry_after is not None:
                raise TooManyAttemptsError(retry_after)

    async def _hit(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> int | None:
        """Count one hit in Redis, or here while Redis is down; None, or the seconds to wait."""
        if self.shared is not None and time.monotonic() >= self._redis_down_until:
            try:
                retry_after = await _hit(self.shared, item, identifiers)
            except StorageError as exc:
                self._redis_down(exc)
            else:
                if self._degraded:
                    self._degraded = False
                    log.info("rate limits: counting in Redis again")
                return retry_after
        return await _hit(self.local, item, identifiers)

    def _redis_down(self, exc: StorageError) -> None:
        self._redis_down_until = time.monotonic() + self.retry_seconds
        if not self._degraded:
            self._degraded = True
            log.warning(
                "rate limits: Redis unavailable, counting in this process",
                extra={"error": type(exc.storage_error).__name__},
            )


async def _hit(
    limiter: MovingWindowRateLimiter, item: RateLimitItem, identifiers: tuple[str, ...]
) -> int | None:
    if await limiter.hit(item, *identifiers):
        return None
    stats = await limiter.get_window_stats(item, *identifiers)
    return max(1, math.ceil(stats.reset_time - time.time()))
