"""Auth settings: the common ones, Redis, the rate limits on signing in and up, and the line
the password-hashing routes wait in."""

from __future__ import annotations

from functools import cache

from limits import parse_many
from pydantic import Field, field_validator, model_validator

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
    # Attempts let through in moving windows, in `limits`' notation ("10/minute;100/hour"). Sign-in
    # (see `throttle`): every attempt per client address (RATE_LIMIT_SIGNIN_PER_ADDRESS, sprays),
    # and failures per email at one address (RATE_LIMIT_SIGNIN_PER_EMAIL_AND_ADDRESS, one
    # guesser; a success clears them). Sign-up: attempts per address and per email.
    rate_limit_signin_per_address: str = "30/minute;300/hour"
    rate_limit_signin_per_email_and_address: str = "5/minute;20/hour"
    rate_limit_signup_per_address: str = "10/minute;60/hour"
    rate_limit_signup_per_email: str = "5/minute"
    # Failures on one email from everywhere, against guessing spread over many addresses: past
    # RATE_LIMIT_SIGNIN_EMAIL_FREE_FAILURES, each failure makes the next attempt on that email
    # wait twice as long, from RATE_LIMIT_SIGNIN_EMAIL_DELAY_SECONDS up to
    # RATE_LIMIT_SIGNIN_EMAIL_MAX_DELAY_SECONDS (a short wait, never a long refusal: the owner
    # is held by it too when signing in from an address new to the account); forgotten
    # RATE_LIMIT_SIGNIN_EMAIL_WINDOW_SECONDS after the last failure.
    rate_limit_signin_email_free_failures: int = Field(default=20, ge=1)
    rate_limit_signin_email_delay_seconds: float = Field(default=1.0, gt=0)
    rate_limit_signin_email_max_delay_seconds: float = Field(default=30.0, gt=0)
    rate_limit_signin_email_window_seconds: int = Field(default=3600, ge=1)
    # An address an account signed up or in from is known to it this long
    # (RATE_LIMIT_KNOWN_ADDRESS_DAYS): attempts from there skip that email-wide wait, so a
    # stranger's guesses never hold the owner back at home.
    rate_limit_known_address_days: float = Field(default=30.0, gt=0)
    # Sign-up and sign-in hash a password (tens of ms of a core each): they wait in a line of
    # their own, HTTP_HASHING_CONCURRENCY served at once and HTTP_HASHING_QUEUE waiting, so the
    # cheap requests (currentuser, on every page) never queue behind a burst of them. 0: no line
    # of their own, they wait in the main line (HTTP_CONCURRENCY) with the rest.
    http_hashing_concurrency: int = Field(default=4, ge=0)
    http_hashing_queue: int = Field(default=100, ge=0)
    # After Redis failed, attempts are counted in the process this long before Redis is tried
    # again (RATE_LIMIT_REDIS_RETRY_SECONDS).
    rate_limit_redis_retry_seconds: float = Field(default=5.0, gt=0)

    @field_validator(
        "rate_limit_signin_per_address",
        "rate_limit_signin_per_email_and_address",
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

    @model_validator(mode="after")
    def _delays_in_order(self) -> Settings:
        if (
            self.rate_limit_signin_email_max_delay_seconds
            < self.rate_limit_signin_email_delay_seconds
        ):
            raise ValueError(
                "RATE_LIMIT_SIGNIN_EMAIL_MAX_DELAY_SECONDS is below "
                "RATE_LIMIT_SIGNIN_EMAIL_DELAY_SECONDS"
            )
        return self


@cache
def get_settings() -> Settings:
    return Settings()
