import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from ticketing_common.bus.policy import RetryPolicy
from ticketing_common.settings import (
    DEV_JWT_KEY,
    OTEL_VARIABLES,
    ExpiryGraceKnobs,
    Knobs,
    ServiceSettings,
    Tuning,
)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_URL", "mongodb://db.example:27017")
    monkeypatch.setenv("NATS_MAX_DELIVER", "12")
    monkeypatch.setenv("COOKIE_SECURE", "false")
    settings = ServiceSettings(service_name="tickets", environment="development")
    assert settings.mongo_url == "mongodb://db.example:27017"
    assert settings.nats_max_deliver == 12
    assert settings.cookie_secure is False
    assert settings.mongo_db == "tickets"


def test_an_unset_environment_is_production_and_needs_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.delenv("JWT_KEY", raising=False)
    with pytest.raises(ValidationError, match="JWT_KEY must be set"):
        ServiceSettings()


def test_local_development_gets_a_dev_jwt_key() -> None:
    assert ServiceSettings(environment="development").jwt_secret == DEV_JWT_KEY


@pytest.mark.parametrize("environment", ["production", "test"])
def test_outside_development_jwt_key_is_required(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.delenv("JWT_KEY", raising=False)
    with pytest.raises(ValidationError, match="JWT_KEY must be set"):
        ServiceSettings(environment=environment)  # type: ignore[arg-type]
    monkeypatch.setenv("JWT_KEY", "k" * 40)
    assert ServiceSettings(environment=environment).jwt_secret == "k" * 40  # type: ignore[arg-type]


def test_the_secret_is_not_in_the_repr() -> None:
    settings = ServiceSettings(jwt_key="super-secret-value-0123456789abcdef")  # type: ignore[arg-type]
    assert "super-secret-value" not in repr(settings)


def test_a_deferred_event_is_offered_longer_than_a_lost_delivery_takes_to_return(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The retry horizon bounds RetryLater; it must outlast a delivery lost with a crashed
    process (back after ack_wait), whatever NATS_MAX_DELIVER (which now counts only poison)."""
    default = ServiceSettings(environment="development")
    assert default.nats_retry_horizon_seconds == 3600
    assert default.nats_retry_horizon_seconds > 2 * default.nats_ack_wait_seconds
    with pytest.raises(ValidationError, match="NATS_RETRY_HORIZON_SECONDS"):
        ServiceSettings(
            environment="development", nats_retry_horizon_seconds=60, nats_ack_wait_seconds=30
        )
    # Few deliveries for poison no longer cut a deferred event short: valid.
    few = ServiceSettings(
        environment="development", nats_max_deliver=2, nats_retry_delay_seconds=0.1
    )
    assert few.nats_retry_horizon_seconds == 3600
    monkeypatch.setenv("NATS_RETRY_HORIZON_SECONDS", "120")
    assert ServiceSettings(environment="development").nats_retry_horizon_seconds == 120


def test_the_poison_budget_is_the_backoff_of_max_deliver_failures() -> None:
    settings = ServiceSettings(
        environment="development", nats_max_deliver=9, nats_retry_delay_seconds=0.1
    )
    # 0.1 + 0.2 + ... + 12.8: the waits between 9 failed deliveries.
    assert RetryPolicy.from_settings(settings).poison_budget == pytest.approx(25.5)


@pytest.mark.parametrize(
    "field", ["nats_max_deliver", "nats_ack_wait_seconds", "nats_retry_delay_seconds"]
)
def test_retry_settings_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ServiceSettings(environment="development", **{field: 0})


@pytest.mark.parametrize("environment", ["production", "test"])
def test_a_jwt_key_shorter_than_32_bytes_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValidationError, match="JWT_KEY must be at least 32 bytes"):
        ServiceSettings(environment=environment, jwt_key="k" * 31)  # type: ignore[arg-type]
    # Bytes, not characters: 16 two-byte characters are 32 bytes.
    assert ServiceSettings(environment=environment, jwt_key="é" * 16).jwt_secret == "é" * 16  # type: ignore[arg-type]


def test_local_development_accepts_a_short_key() -> None:
    assert ServiceSettings(environment="development", jwt_key="short").jwt_secret == "short"  # type: ignore[arg-type]


def test_streams_are_replicated_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings(environment="development").nats_stream_replicas == 1
    monkeypatch.setenv("NATS_STREAM_REPLICAS", "3")
    assert ServiceSettings(environment="development").nats_stream_replicas == 3
    monkeypatch.setenv("NATS_STREAM_REPLICAS", "0")
    with pytest.raises(ValidationError):
        ServiceSettings(environment="development")


def introduced_by(settings: type[BaseSettings], field: str) -> type[BaseSettings]:
    """The class that declares `field` first (a subclass may change its default)."""
    for cls in reversed(settings.__mro__):
        if field in getattr(cls, "__annotations__", {}):
            return cls
    raise AssertionError(field)


def test_every_field_is_a_deployer_s_knob_or_tuning_and_every_knob_says_what_it_is() -> None:
    for field, info in ServiceSettings.model_fields.items():
        origin = introduced_by(ServiceSettings, field)
        assert issubclass(origin, Knobs) != issubclass(origin, Tuning), field
        if issubclass(origin, Knobs):
            assert info.description, field  # its docstring: docs/settings.md shows it
    assert ServiceSettings.model_fields["mongo_url"].description
    assert introduced_by(ServiceSettings, "http_concurrency").__name__ == "ServiceTuning"


def test_the_opentelemetry_sdk_s_variables_are_not_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK reads them itself (`telemetry.tracing.configure`); none is mirrored here."""
    names = {v.name for v in OTEL_VARIABLES}
    assert {"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER_ARG"} <= names
    assert not [f for f in ServiceSettings.model_fields if f.startswith("otel_")]
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "not a number")  # not read by the settings
    ServiceSettings(environment="development")


def test_the_expiry_grace_is_one_field_whoever_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ExpiryGraceKnobs().expiry_grace_seconds == 5
    monkeypatch.setenv("EXPIRY_GRACE_SECONDS", "2.5")
    assert ExpiryGraceKnobs().expiry_grace_seconds == 2.5
    monkeypatch.setenv("EXPIRY_GRACE_SECONDS", "-1")
    with pytest.raises(ValidationError):
        ExpiryGraceKnobs()
