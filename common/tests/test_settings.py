import pytest
from pydantic import ValidationError

from ticketing_common.settings import DEV_JWT_KEY, ServiceSettings


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


def test_retries_must_outlast_the_redelivery_of_a_lost_message() -> None:
    default = ServiceSettings(environment="development")
    assert default.nats_retry_budget_seconds > 2 * default.nats_ack_wait_seconds
    with pytest.raises(ValidationError, match="NATS_MAX_DELIVER"):
        ServiceSettings(
            environment="development",
            nats_max_deliver=8,
            nats_retry_delay_seconds=0.1,
            nats_ack_wait_seconds=30,
        )
    ok = ServiceSettings(
        environment="development",
        nats_max_deliver=9,
        nats_retry_delay_seconds=0.1,
        nats_ack_wait_seconds=5,
    )
    assert ok.nats_retry_budget_seconds == pytest.approx(25.5)


@pytest.mark.parametrize("environment", ["production", "test"])
def test_a_jwt_key_shorter_than_32_bytes_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValidationError, match="JWT_KEY must be at least 32 bytes"):
        ServiceSettings(environment=environment, jwt_key="k" * 31)  # type: ignore[arg-type]
    # Bytes, not characters: 16 two-byte characters are 32 bytes.
    assert ServiceSettings(environment=environment, jwt_key="é" * 16).jwt_secret == "é" * 16  # type: ignore[arg-type]


def test_local_development_accepts_a_short_key() -> None:
    assert ServiceSettings(environment="development", jwt_key="short").jwt_secret == "short"  # type: ignore[arg-type]
