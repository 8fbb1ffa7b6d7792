"""Auth settings: the common ones, Redis, the rate limits on signing in and up, and the line
the password-hashing routes wait in."""

from __future__ import annotations

from functools import cache

from limits import parse_many
from pydantic import Field, field_validator, model_validator

from ticketing_common.settings import RedisKnobs, ServiceSettings, Tuning


class AuthKnobs(RedisKnobs):
    """What a deployer sets for auth: REDIS_URL, where the rate limits count attempts (shared by
    every replica), and the limits themselves."""

    # Attempts let through in moving windows, in `limits`' notation ("10/minute;100/hour"). See
    # `throttle`: every sign-in attempt counts per client address (sprays), failures per email at
    # one address (one guesser; a success clears them); sign-up counts per address and per email.
    rate_limit_signin_per_address: str = "30/minute;300/hour"
    """Sign-in attempts let through per client address (`limits`' notation,
    `10/minute;100/hour`)."""
    rate_limit_signin_per_email_and_address: str = "5/minute;20/hour"
    """Failed sign-ins let through per email at one address (a success clears them)."""
    rate_limit_signup_per_address: str = "10/minute;60/hour"
    """Sign-up attempts let through per client address."""
    rate_limit_signup_per_email: str = "5/minute"
    """Sign-up attempts let through per email."""


class AuthTuning(Tuning):
    """How auth runs: the cost of a hash, the wait that slows guessing, the hashing line."""

    # Argon2id's cost. The default is OWASP's first recommendation (19 MiB, 2 passes, 1 lane;
    # Password Storage Cheat Sheet), which is also the floor enforced here, and a fraction of
    # what pwdlib's default (64 MiB, t=3, p=4) cost (BENCHMARKS.md, "Between 1eddfd6 and
    # PREVIOUS"). Raise them where CPU allows; existing hashes keep verifying (their parameters
    # are in them).
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)
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
    # Sign-up and sign-in hash a password (the costliest thing a request does here): they wait
    # in a line of their own, HTTP_HASHING_CONCURRENCY served at once and HTTP_HASHING_QUEUE
    # waiting, so the cheap requests (currentuser, on every page) never queue behind a burst of
    # them (BENCHMARKS.md, "currentuser during a sign-in burst (issue 21, item 4)"). 0: no line
    # of their own, they wait in the main line (HTTP_CONCURRENCY) with the rest.
    http_hashing_concurrency: int = Field(default=4, ge=0)
    http_hashing_queue: int = Field(default=100, ge=0)
    # After Redis failed, attempts are counted in the process this long before Redis is tried
    # again (RATE_LIMIT_REDIS_RETRY_SECONDS).
    rate_limit_redis_retry_seconds: float = Field(default=5.0, gt=0)


class Settings(AuthTuning, AuthKnobs, ServiceSettings):
    """Auth's settings: its knobs and tuning on top of every service's."""

    service_name: str = "auth"

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
