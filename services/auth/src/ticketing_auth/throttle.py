"""Rate limits on signing in and signing up, so that a few clients cannot keep the service's
cores busy hashing passwords (each Argon2id hash costs a core's time and `ARGON2_MEMORY_KIB` of
memory: see BENCHMARKS.md, "currentuser during a sign-in burst (issue 21, item 4)"), nor guess a
password, nor lock its owner out.

Every count is taken before any password is hashed. A sign-in is counted, in moving windows
(`limits`, e.g. "10/minute;100/hour"):
- per client address, every attempt: one address spraying many accounts (and the hasher's CPU);
- per email at one address, failures: one guesser at one account. An attempt is counted as a
  failure until it succeeds (so a burst of parallel guesses cannot all pass before the first
  failure is recorded), and a success clears them: the owner's own typos do not add up;
- per email alone, failures from everywhere (`Backoff`): guessing spread over many addresses.
  This one never refuses for long: past a free allowance each failure doubles the wait before
  the next attempt on the email (up to a short cap), and an address the account signed up or
  in from (a known address, remembered for `RATE_LIMIT_KNOWN_ADDRESS_DAYS`) skips the wait,
  so strangers' guesses never keep the owner out at home. A success takes back its own count
  there but not the others' (the guessing it measures goes on whoever signs in).
A sign-up is counted per address and per email, attempts. Emails are counted by a digest: no
address book in Redis. Every answer is the same for an email with and without an account: the
counts are taken before the account is looked up, and known addresses exist only where an
account was opened from them, which its owner knows already.

An attempt over a limit is refused with `TooManyAttemptsError` and the seconds until one is let
through again; a refused attempt is not counted by the limit that refused it.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from cachetools import TTLCache
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ticketing_auth.errors import TooManyAttemptsError
from ticketing_auth.settings import Settings

log = logging.getLogger("ticketing.auth.throttle")

Action = Literal["signin", "signup"]
IN_PROCESS = "memory://"
# A limiter that cannot answer within this is treated as down: a sign-in waits no longer.
REDIS_TIMEOUT_SECONDS = 0.25
KEY_PREFIX = "ticketing-auth-limits"
# Known addresses an account keeps (its latest): the owner's few homes and phones.
KNOWN_PER_ACCOUNT = 20
# Emails and known addresses counted in one process at most (the oldest go first): a bound on
# its memory whatever a spray sends.
LOCAL_ENTRIES = 100_000
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """The wait on one email, from everywhere: after `free` failures, each failure makes the
    next attempt wait `delay` seconds, then twice as long each time, up to `max_delay`; the
    failures are forgotten `window` seconds after the last one."""

    free: int
    delay: float
    max_delay: float
    window: int

    def wait_after(self, failures: int) -> float:
        """The wait before the next attempt once the email has had `failures`."""
        over = failures - self.free
        if over <= 0:
            return 0.0
        # min() first: 2 ** a large count would overflow a float.
        return min(self.max_delay, self.delay * 2.0 ** min(over - 1, 64))


@dataclass(frozen=True)
class Limits:
    """Every limit: sign-in per address and per email at an address, the wait per email;
    sign-up per address and per email."""

    signin_per_address: list[RateLimitItem]
    signin_per_pair: list[RateLimitItem]
    signin_per_email: Backoff
    signup_per_address: list[RateLimitItem]
    signup_per_email: list[RateLimitItem]
    known_seconds: int


def limits_of(settings: Settings) -> Limits:
    return Limits(
        signin_per_address=parse_many(settings.rate_limit_signin_per_address),
        signin_per_pair=parse_many(settings.rate_limit_signin_per_email_and_address),
        signin_per_email=Backoff(
            free=settings.rate_limit_signin_email_free_failures,
            delay=settings.rate_limit_signin_email_delay_seconds,
            max_delay=settings.rate_limit_signin_email_max_delay_seconds,
            window=settings.rate_limit_signin_email_window_seconds,
        ),
        signup_per_address=parse_many(settings.rate_limit_signup_per_address),
        signup_per_email=parse_many(settings.rate_limit_signup_per_email),
        known_seconds=math.ceil(settings.rate_limit_known_address_days * 86_400),
    )


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _redis_pool(url: str) -> ConnectionPool:
    return ConnectionPool.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        # No retries with backoff (redis-py's default takes seconds): down is down, at once.
        retry=Retry(NoBackoff(), 0),
    )


class Store(Protocol):
    """Where the counts are: Redis (every replica's) or this process."""

    limiter: MovingWindowRateLimiter

    async def backoff(self, key: str, backoff: Backoff, now: float, *, wait: bool) -> float:
        """One attempt on `key` counted as a failure, unless it must wait (`wait`: it is not
        from a known address) and the wait is not over: then the seconds left (0 when let
        through)."""

    async def refund(self, key: str) -> None:
        """Take back one failure of `key` (the attempt succeeded)."""

    async def known(self, account: str, key: str, now: float) -> bool:
        """Whether the account (an email's digest) signed in from `key` (its pair's digest)."""

    async def remember(self, account: str, key: str, seconds: int, now: float) -> None:
        """Remember `key` for `seconds`; an account keeps its KNOWN_PER_ACCOUNT latest."""


# Atomic in Redis, so that of parallel attempts on one email past its allowance one is let
# through and the others wait. KEYS[1]: the email's failures and when the next attempt may
# come; ARGV: now, free, delay, max delay (times in whole milliseconds: exact in Lua's
# doubles, where seconds since 1970 with a fraction lose their last digits and a 1 s wait
# would read 1.0001 s), window (seconds), whether this attempt must wait. Returns the
# milliseconds left to wait, 0 when let through.
_BACKOFF = """
local now = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'failures', 'not_before')
local failures = tonumber(state[1] or '0')
local not_before = tonumber(state[2] or '0')
if ARGV[6] == '1' and now < not_before then
  return not_before - now
end
failures = failures + 1
local over = failures - tonumber(ARGV[2])
if over > 0 then
  local wait = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ math.min(over - 1, 64))
  not_before = math.max(not_before, now + math.floor(wait))
end
redis.call('HSET', KEYS[1], 'failures', failures, 'not_before', string.format('%d', not_before))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 0
"""
_REFUND = """
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures > 0 then
  redis.call('HSET', KEYS[1], 'failures', failures - 1)
end
"""


class RedisStore:
    def __init__(self, url: str) -> None:
        self.pool = _redis_pool(url)
        # Passed on to redis-py, which `RedisStorage`'s signature does not type.
        options: dict[str, Any] = {"connection_pool": self.pool}
        storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=KEY_PREFIX,
            **options,
        )
        self.limiter = MovingWindowRateLimiter(storage)
        self.redis = Redis(connection_pool=self.pool)
        self._backoff = self.redis.register_script(_BACKOFF)
        self._refund = self.redis.register_script(_REFUND)

    async def backoff(self, key: str, backoff: Backoff, now: float, *, wait: bool) -> float:
        args = [
            _ms(now),
            backoff.free,
            _ms(backoff.delay),
            _ms(backoff.max_delay),
            backoff.window,
            int(wait),
        ]
        left_ms = await self._backoff(keys=[f"{KEY_PREFIX}/backoff/{key}"], args=args)
        return int(left_ms) / 1000

    async def refund(self, key: str) -> None:
        await self._refund(keys=[f"{KEY_PREFIX}/backoff/{key}"])

    async def known(self, account: str, key: str, now: float) -> bool:
        until = await self.redis.zscore(f"{KEY_PREFIX}/known/{account}", key)
        return until is not None and until > now

    async def remember(self, account: str, key: str, seconds: int, now: float) -> None:
        # One sorted set per account (member: the address's pair, score: until when), trimmed
        # to its latest KNOWN_PER_ACCOUNT: one key per successful sign-in from a new address
        # (an account rotating addresses) would fill Redis, which holds the expiry jobs too.
        name = f"{KEY_PREFIX}/known/{account}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(name, {key: now + seconds})
            pipe.zremrangebyscore(name, "-inf", now)
            pipe.zremrangebyrank(name, 0, -KNOWN_PER_ACCOUNT - 1)
            pipe.expire(name, seconds)
            await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()
        await self.pool.aclose()


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass
class _EmailState:
    failures: int = 0
    not_before_ms: int = 0  # whole milliseconds, as in Redis


class LocalStore:
    """The same counts in this process (Redis down, or `memory://`), bounded in entries."""

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        # Re-set on every failure, so an entry lives `window` after its email's last failure.
        self._emails: TTLCache[str, _EmailState] = TTLCache(
            LOCAL_ENTRIES, limits.signin_per_email.window, timer=clock
        )
        self._known: TTLCache[str, bool] = TTLCache(
            LOCAL_ENTRIES, limits.known_seconds, timer=clock
        )

    async def backoff(self, key: str, backoff: Backoff, now: float, *, wait: bool) -> float:
        state = self._emails.get(key) or _EmailState()
        now_ms = _ms(now)
        if wait and now_ms < state.not_before_ms:
            return (state.not_before_ms - now_ms) / 1000
        state.failures += 1
        wait_ms = _ms(backoff.wait_after(state.failures))
        state.not_before_ms = max(state.not_before_ms, now_ms + wait_ms)
        self._emails[key] = state
        return 0.0

    async def refund(self, key: str) -> None:
        state = self._emails.get(key)
        if state is not None and state.failures > 0:
            state.failures -= 1

    async def known(self, account: str, key: str, now: float) -> bool:
        return key in self._known

    async def remember(self, account: str, key: str, seconds: int, now: float) -> None:
        self._known[key] = True  # bounded by LOCAL_ENTRIES altogether


class Throttle:
    def __init__(self, settings: Settings) -> None:
        self.limits = limits_of(settings)
        self.retry_seconds = settings.rate_limit_redis_retry_seconds
        # Wall-clock time, the same on every replica (the waits per email are shared in Redis);
        # tests move it.
        self.clock: Callable[[], float] = time.time
        self.local = LocalStore(self.limits, lambda: self.clock())
        self.shared: RedisStore | None = None
        if settings.redis_url != IN_PROCESS:
            self.shared = RedisStore(settings.redis_url)
        self._redis_down_until = 0.0
        self._degraded = False

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()

    async def attempt(self, action: Action, *, address: str, email: str) -> None:
        """Count an attempt; TooManyAttemptsError when a limit is reached (that limit's count
        unchanged)."""
        if action == "signup":
            await self._hit_all(self.limits.signup_per_address, ("signup", "address", address[:64]))
            await self._hit_all(self.limits.signup_per_email, ("signup", "email", _digest(email)))
            return
        await self._hit_all(self.limits.signin_per_address, ("signin", "address", address[:64]))
        pair = _digest(email, address)
        # Tested first and counted last: an attempt held by the wait per email is no failure
        # here, so the owner waiting it out at a new address is not refused for a minute.
        for item in self.limits.signin_per_pair:
            retry_after = await self._on(partial(_test, item=item, identifiers=_pair(pair)))
            if retry_after is not None:
                raise TooManyAttemptsError(retry_after)
        now = self.clock()
        known = await self._on(partial(_known, account=_digest(email), key=pair, now=now))
        backoff = self.limits.signin_per_email
        left = await self._on(
            partial(_backoff, key=_digest(email), backoff=backoff, now=now, wait=not known)
        )
        if left > 0:
            raise TooManyAttemptsError(max(1, math.ceil(left)))
        await self._hit_all(self.limits.signin_per_pair, _pair(pair))

    async def succeeded(self, action: Action, *, address: str, email: str) -> None:
        """The attempt signed up or in: the address is known to the account from now on, and
        a sign-in's own counts as a failure are taken back (its email at this address cleared,
        its one failure on the email alone taken back). The address's attempts stay counted:
        an attacker with an account of their own would otherwise reset them between guesses."""
        pair = _digest(email, address)
        remember = partial(
            _remember,
            account=_digest(email),
            key=pair,
            seconds=self.limits.known_seconds,
            now=self.clock(),
        )
        await self._on(remember)
        if action != "signin":
            return
        for item in self.limits.signin_per_pair:
            await self._on(partial(_clear, item=item, identifiers=_pair(pair)))
        await self._on(partial(_refund, key=_digest(email)))

    async def _hit_all(self, items: list[RateLimitItem], identifiers: tuple[str, ...]) -> None:
        for item in items:
            retry_after = await self._on(partial(_hit, item=item, identifiers=identifiers))
            if retry_after is not None:
                raise TooManyAttemptsError(retry_after)

    async def _on(self, op: Callable[[Store], Awaitable[T]]) -> T:
        """`op` on Redis, or on this process while Redis is down."""
        if self.shared is not None and time.monotonic() >= self._redis_down_until:
            try:
                result = await op(self.shared)
            except (StorageError, RedisError) as exc:
                self._redis_down(exc)
            else:
                if self._degraded:
                    self._degraded = False
                    log.info("rate limits: counting in Redis again")
                return result
        return await op(self.local)

    def _redis_down(self, exc: StorageError | RedisError) -> None:
        self._redis_down_until = time.monotonic() + self.retry_seconds
        if not self._degraded:
            self._degraded = True
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            log.warning(
                "rate limits: Redis unavailable, counting in this process",
                extra={"error": type(cause).__name__},
            )


def _retry_after(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


async def _hit(store: Store, item: RateLimitItem, identifiers: tuple[str, ...]) -> int | None:
    """Count one hit; None, or the seconds to wait (not counted)."""
    if await store.limiter.hit(item, *identifiers):
        return None
    stats = await store.limiter.get_window_stats(item, *identifiers)
    return _retry_after(stats.reset_time)


async def _test(store: Store, item: RateLimitItem, identifiers: tuple[str, ...]) -> int | None:
    """Whether one more hit would be let through (None), or the seconds to wait; not counted."""
    if await store.limiter.test(item, *identifiers):
        return None
    stats = await store.limiter.get_window_stats(item, *identifiers)
    return _retry_after(stats.reset_time)


async def _clear(store: Store, item: RateLimitItem, identifiers: tuple[str, ...]) -> None:
    await store.limiter.clear(item, *identifiers)


# The store's own operations, as functions of the store for `Throttle._on`.
async def _known(store: Store, account: str, key: str, now: float) -> bool:
    return await store.known(account, key, now)


async def _remember(store: Store, account: str, key: str, seconds: int, now: float) -> None:
    await store.remember(account, key, seconds, now)


async def _backoff(store: Store, key: str, backoff: Backoff, now: float, wait: bool) -> float:
    return await store.backoff(key, backoff, now, wait=wait)


async def _refund(store: Store, key: str) -> None:
    await store.refund(key)


def _pair(digest: str) -> tuple[str, ...]:
    """The identifiers of a sign-in's email at its address, in the moving windows."""
    return ("signin", "pair", digest)
