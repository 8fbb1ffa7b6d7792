"""Auth settings: the common ones, Redis and the rate limits on signing in and up."""

from __future__ import annotations

from functools import cache

from limits import parse_many
from pydantic import Field, field_validator

from ticketing_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "auth"
    # Argon2id's cost. The default is OWASP's first recommendation (19 MiB, 2 passes, 1 lane;
    # Password Storage Cheat Sheet), which is also the floor enforced here: ~25 ms of one core
    # per hash on a 2-core machine, where pwdlib's default (64 MiB, t=3, p=4) took ~280 ms.
    # Raise them where CPU allows; existing hashes keep verifying (their parameters are in them).
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)

    # Where the rate limits count attempts, shared by every replica (REDIS_URL); `memory://`
    # counts in the process (one replica only). See `throttle`.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Attempts let through in moving windows, in `limits`' notation ("10/minute;100/hour"):
    # per client address (RATE_LIMIT_SIGNIN_PER_ADDRESS, ...) and per email named.
    rate_limit_signin_per_address: str = "30/minute;300/hour"
    rate_limit_signin_per_email: str = "10/minute;60/hour"
    rate_limit_signup_per_address: str = "10/minute;60/hour"
    rate_limit_signup_per_email: str = "5/minute"
    # After Redis failed, attempts are counted in the process this long before Redis is tried
    # again (RATE_LIMIT_REDIS_RETRY_SECONDS).
    rate_limit_redis_retry_seconds: float = Field(default=5.0, gt=0)

    @field_validator(
        "rate_limit_signin_per_address",
        "rate_limit_signin_per_email",
        "rate_limit_signup_per_address",
        "rate_limit_signup_per_email",
    )
    @classmethod
    def _a_limit(cls, value: str) -> str:
        try:
            items = parse_many(value)
        except ValueError:
            items = []
        if not items or any(item.amount < 1 for item in items):
            raise ValueError(
                f"{value!r} is not a rate limit such as '10/minute' or '10/minute;100/hour'"
            )
        return value


@cache
def get_settings() -> Settings:
    return Settings()
