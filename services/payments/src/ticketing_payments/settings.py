"""Payments settings: the common ones, plus where and how to reach Stripe.

The real Stripe API is used only with a real key and no STRIPE_API_BASE. Development and tests
set STRIPE_API_BASE to the fake (`python -m ticketing_fakestripe`) on loopback, with a placeholder
test key, so nothing needs the internet or a Stripe account.
"""

from __future__ import annotations

from functools import cache

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from ticketing_common.settings import ExpirySweepTuning, Knobs, ServiceSettings

# The key sent to the fake; it accepts any `sk_test_` key, Stripe accepts none of these.
PLACEHOLDER_STRIPE_KEY = "sk_test_local"
# Where local development finds the fake when nothing is configured (stripe-mock's port).
DEV_STRIPE_API_BASE = "http://127.0.0.1:12111"
# At most, one payment attempt until its outcome is stored: create (or find) the order's
# PaymentIntent, read it back when that was a replay, confirm (authorize) it. (A void after the
# payment is stored may outlast the lease harmlessly: the cancellation handler's void, waiting
# for the lease, is the same idempotent request.)
STRIPE_CALLS_PER_ATTEMPT = 3


class PaymentsKnobs(Knobs):
    """What a deployer sets for payments: Stripe, and when an order nobody paid is closed."""

    stripe_key: SecretStr | None = None
    """Stripe's secret key (sk_...). Required outside development unless STRIPE_API_BASE names
    a fake (then a test key, never a live one)."""
    stripe_api_base: str | None = None
    """A Stripe fake's URL instead of Stripe's (`python -m ticketing_fakestripe`); unset: Stripe
    itself, or in development without a key the local fake (http://127.0.0.1:12111)."""
    # Minutes: expiration's own event (EXPIRY_GRACE_SECONDS after expiresAt) normally does it;
    # this is the safety net for a lost one (`windows`), the SPEC's longer grace.
    expiry_sweep_grace_seconds: float = Field(default=300.0, ge=0)
    """How long after an open order's expiresAt payments closes its window to pay by itself,
    should expiration's event never come."""


class PaymentsTuning(ExpirySweepTuning):
    """How payments runs (EXPIRY_SWEEP_SECONDS: how often it looks for overdue windows)."""

    # One Stripe call: timeout per attempt and retries of connection errors, 409s and 5xx (the
    # SDK resends with the same idempotency key, so a retry never charges twice).
    stripe_timeout_seconds: float = 15.0
    stripe_max_network_retries: int = 2
    # How long a payment attempt holds its order against a second, concurrent attempt (and
    # holds back the void of the order's authorization on cancellation, which must see how the
    # attempt ended). Longer than the slowest attempt (validated below), so a live attempt
    # never loses it.
    payment_lease_seconds: float = 180.0
    # A payment spends most of its time waiting for Stripe, not on the loop: more at once than
    # the other services (HTTP_CONCURRENCY), or a few slow Stripe answers would hold back the
    # payments behind them.
    http_concurrency: int = Field(default=64, ge=0)


class Settings(PaymentsTuning, PaymentsKnobs, ServiceSettings):
    """Payments' settings: its knobs and tuning on top of every service's."""

    service_name: str = "payments"

    @field_validator("stripe_api_base")
    @classmethod
    def _the_fake_in_development(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Defaults are validated too (pydantic-settings' validate_default), after `environment`
        # and `stripe_key`: with neither a key nor a base, development talks to the local fake.
        no_key = "stripe_key" in info.data and info.data["stripe_key"] is None
        if value is None and no_key and info.data.get("environment") == "development":
            return DEV_STRIPE_API_BASE
        return value

    @model_validator(mode="after")
    def _stripe_target(self) -> Settings:
        key = self.stripe_key.get_secret_value() if self.stripe_key is not None else None
        if self.stripe_api_base is None:
            if key is None:
                raise ValueError(
                    "STRIPE_KEY must be set outside local development "
                    "(or STRIPE_API_BASE, to use a Stripe fake)"
                )
            if key == PLACEHOLDER_STRIPE_KEY:
                raise ValueError(
                    f"STRIPE_KEY {PLACEHOLDER_STRIPE_KEY} only works with STRIPE_API_BASE (a fake)"
                )
        elif key is not None and "_live_" in key:
            # A live secret must only ever be sent to Stripe itself.
            raise ValueError("a live STRIPE_KEY cannot be used with STRIPE_API_BASE")
        if self.payment_lease_seconds <= self.slowest_payment_attempt_seconds:
            raise ValueError(
                "PAYMENT_LEASE_SECONDS must exceed the slowest payment attempt "
                f"({self.slowest_payment_attempt_seconds:.0f}s: {STRIPE_CALLS_PER_ATTEMPT} Stripe "
                "calls with these timeouts and retries)"
            )
        return self

    @property
    def slowest_stripe_call_seconds(self) -> float:
        attempts = self.stripe_max_network_retries + 1
        # The SDK sleeps at most 0.5 * 2**(n-1) seconds (capped at 5) before retry n.
        backoff = sum(min(0.5 * 2.0 ** (n - 1), 5.0) for n in range(1, attempts))
        return attempts * self.stripe_timeout_seconds + backoff

    @property
    def slowest_payment_attempt_seconds(self) -> float:
        return STRIPE_CALLS_PER_ATTEMPT * self.slowest_stripe_call_seconds

    @property
    def stripe_secret(self) -> str:
        # Unset only with STRIPE_API_BASE (the validator sees to it): the fake takes this one.
        return (
            self.stripe_key.get_secret_value()
            if self.stripe_key is not None
            else PLACEHOLDER_STRIPE_KEY
        )


@cache
def get_settings() -> Settings:
    return Settings()
