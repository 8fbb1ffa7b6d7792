"""Where the Stripe SDK is pointed, decided once, at start-up, from STRIPE_KEY / STRIPE_API_BASE."""

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from ticketing_payments.settings import DEV_STRIPE_API_BASE, PLACEHOLDER_STRIPE_KEY, Settings

JWT = {"jwt_key": SecretStr("test-jwt-key-0123456789abcdef0123456789")}


def build(**fields: Any) -> Settings:
    return Settings(**{**JWT, **fields})


@pytest.mark.parametrize("environment", ["production", "test"])
def test_outside_development_a_missing_key_without_a_fake_is_an_error(environment: str) -> None:
    with pytest.raises(ValidationError, match="STRIPE_KEY must be set"):
        build(environment=environment)


def test_production_with_a_real_key_uses_the_real_api() -> None:
    settings = build(environment="production", stripe_key=SecretStr("sk_test_51RealLookingKey"))
    assert settings.stripe_api_base is None
    assert settings.stripe_secret == "sk_test_51RealLookingKey"


def test_development_without_configuration_uses_the_fake_on_loopback() -> None:
    settings = build(environment="development")
    assert settings.stripe_api_base == DEV_STRIPE_API_BASE
    assert settings.stripe_api_base.startswith("http://127.0.0.1:")
    assert settings.stripe_secret == PLACEHOLDER_STRIPE_KEY


def test_an_api_base_without_a_key_gets_the_placeholder_key() -> None:
    settings = build(environment="test", stripe_api_base="http://127.0.0.1:9")
    assert settings.stripe_secret == PLACEHOLDER_STRIPE_KEY


def test_the_placeholder_key_is_refused_for_the_real_api() -> None:
    with pytest.raises(ValidationError, match="only works with STRIPE_API_BASE"):
        build(environment="production", stripe_key=SecretStr(PLACEHOLDER_STRIPE_KEY))


@pytest.mark.parametrize("key", ["sk_live_abc", "rk_live_abc"])
def test_a_live_key_is_never_sent_to_another_api_base(key: str) -> None:
    with pytest.raises(ValidationError, match="live STRIPE_KEY"):
        build(environment="production", stripe_key=SecretStr(key), stripe_api_base="http://x")


def test_the_lease_must_outlast_the_slowest_payment_attempt() -> None:
    # 3 Stripe calls, each 3 tries of 15 s plus back-off: 140 s; a shorter lease could expire
    # under a live attempt.
    settings = build(environment="test", stripe_api_base="http://x")
    assert settings.slowest_payment_attempt_seconds == 3 * (3 * 15 + 0.5 + 1)
    assert settings.payment_lease_seconds == 180
    with pytest.raises(ValidationError, match="PAYMENT_LEASE_SECONDS"):
        build(environment="test", stripe_api_base="http://x", payment_lease_seconds=120)
    quick = build(
        environment="test",
        stripe_api_base="http://x",
        stripe_timeout_seconds=5,
        payment_lease_seconds=60,
    )
    assert quick.payment_lease_seconds == 60


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("STRIPE_KEY", "sk_test_from_env")
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:12111")
    settings = build()
    assert settings.stripe_secret == "sk_test_from_env"
    assert settings.stripe_api_base == "http://127.0.0.1:12111"


def test_the_key_is_not_shown_in_reprs() -> None:
    settings = build(environment="production", stripe_key=SecretStr("sk_test_51Secret"))
    assert "sk_test_51Secret" not in repr(settings)
