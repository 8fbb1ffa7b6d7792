"""The web client's settings, from environment variables (a cached factory, like every service)."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Only ever used when ENVIRONMENT=development (`make up`); anywhere else CLIENT_CSRF_KEY must be
# set, so this public value cannot sign a production form token.
DEV_CSRF_KEY = "dev-only-insecure-csrf-key-change-me-0123456789"
MIN_CSRF_KEY_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    # Fail closed, as the services do: a deployment that forgets ENVIRONMENT is production.
    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"
    # Where the API is: the gateway under `make up`; in Kubernetes the ingress-nginx controller's
    # in-cluster address (http://ingress-nginx-controller.ingress-nginx.svc.cluster.local) with
    # CLIENT_API_HOST=ticketing.dev so that the Ingress routes by its host rule.
    client_api_url: str = "http://127.0.0.1:8080"
    client_api_host: str = ""
    client_api_timeout_seconds: float = Field(default=10.0, gt=0)
    # Tickets per page on the home page.
    client_page_size: int = Field(default=12, ge=1, le=100)
    # How long a purchase or payment waits for orders/payments to learn of a ticket or order
    # that was only just created (their replicas are fed by events): a 404 is retried meanwhile.
    client_replica_wait_seconds: float = Field(default=5.0, ge=0)
    # Signs the forms' CSRF tokens (CLIENT_CSRF_KEY; every replica the same). Make one with
    # python3 -c 'import secrets; print(secrets.token_urlsafe(48))'.
    client_csrf_key: SecretStr | None = None
    # The same variables as the services': the session cookie's name (a form token is bound to
    # it) and whether cookies are Secure (then the CSRF cookie is `__Host-csrf`).
    cookie_name: str = "session"
    cookie_secure: bool = True
    # Stripe's publishable key (pk_...): the order page takes the card with Stripe Elements.
    # Unset: the clearly marked test mode (Stripe's test card tokens).
    stripe_publishable_key: str = ""

    @model_validator(mode="after")
    def _csrf_key_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        if self.client_csrf_key is None:
            raise ValueError("CLIENT_CSRF_KEY must be set outside local development")
        key_bytes = len(self.client_csrf_key.get_secret_value().encode())
        if key_bytes < MIN_CSRF_KEY_BYTES:
            raise ValueError(
                f"CLIENT_CSRF_KEY must be at least {MIN_CSRF_KEY_BYTES} bytes (it is {key_bytes});"
                " make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return self

    @model_validator(mode="after")
    def _only_a_publishable_stripe_key(self) -> Settings:
        # The key is written into every order page: a secret key (sk_, rk_) there would be a leak.
        if self.stripe_publishable_key and not self.stripe_publishable_key.startswith("pk_"):
            raise ValueError("STRIPE_PUBLISHABLE_KEY must be a publishable key (pk_...)")
        return self

    @property
    def csrf_secret(self) -> str:
        # Unset only in development (the validator refuses it anywhere else): the public key.
        key = self.client_csrf_key
        return key.get_secret_value() if key is not None else DEV_CSRF_KEY


@cache
def get_settings() -> Settings:
    return Settings()
