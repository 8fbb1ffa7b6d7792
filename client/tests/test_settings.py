import pytest
from pydantic import ValidationError

from ticketing_client.settings import DEV_CSRF_KEY, Settings

KEY = "k" * 32


def test_outside_development_a_csrf_key_of_32_bytes_is_required() -> None:
    for environment in ("production", "test"):
        with pytest.raises(ValidationError, match="CLIENT_CSRF_KEY must be set"):
            Settings(environment=environment)
        with pytest.raises(ValidationError, match="at least 32 bytes"):
            Settings(environment=environment, client_csrf_key="short")
        assert Settings(environment=environment, client_csrf_key=KEY).csrf_secret == KEY
    assert Settings(environment="development").csrf_secret == DEV_CSRF_KEY


def test_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_CSRF_KEY", KEY)
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "pk_test_abc")
    monkeypatch.setenv("COOKIE_SECURE", "false")
    settings = Settings()
    assert settings.csrf_secret == KEY
    assert settings.stripe_publishable_key == "pk_test_abc"
    assert settings.cookie_secure is False


@pytest.mark.parametrize("key", ["sk_test_abc", "rk_live_abc", "whatever"])
def test_only_a_publishable_stripe_key_is_put_in_pages(key: str) -> None:
    with pytest.raises(ValidationError, match="publishable key"):
        Settings(environment="development", stripe_publishable_key=key)
