"""The web client's settings, from environment variables (a cached factory, like every service)."""

from __future__ import annotations

from functools import cache

from pydantic import Field, SecretStr, model_validator

from ticketing_common.settings import ProcessKnobs, Tuning

# Only ever used when ENVIRONMENT=development (`make up`); anywhere else CLIENT_CSRF_KEY must be
# set, so this public value cannot sign a production form token.
DEV_CSRF_KEY = "dev-only-insecure-csrf-key-change-me-0123456789"
MIN_CSRF_KEY_BYTES = 32
LOCAL_GATEWAY = "http://127.0.0.1:8080"


class ClientKnobs(ProcessKnobs):
    """What a deployer sets for the web client, beside what every process reads (ENVIRONMENT,
    LOG_LEVEL, FORWARDED_ALLOW_IPS: the edge in front of it, whose address for a request it
    forwards to the services as the browser's; COOKIE_NAME, to which a form token is bound;
    COOKIE_SECURE, which makes the CSRF cookie `__Host-csrf`)."""

    # The client calls the services directly, in Kubernetes by their Services, not back through
    # the edge, which would replace the browser's address the client forwards with the client's
    # own (every web sign-in counted against one pod). By default the gateway of `make up`,
    # which routes every prefix (so a client started by hand works, but its peer, the client,
    # is every browser's address).
    client_auth_url: str = LOCAL_GATEWAY
    """Where auth is (`http://auth-srv:8000` in Kubernetes)."""
    client_tickets_url: str = LOCAL_GATEWAY
    """Where tickets is (`http://tickets-srv:8000` in Kubernetes)."""
    client_orders_url: str = LOCAL_GATEWAY
    """Where orders is (`http://orders-srv:8000` in Kubernetes)."""
    client_payments_url: str = LOCAL_GATEWAY
    """Where payments is (`http://payments-srv:8000` in Kubernetes)."""
    client_csrf_key: SecretStr | None = None
    """Signs the forms' CSRF tokens (32 bytes at least; every replica the same). Required
    outside development. Make one with
    `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`."""
    stripe_publishable_key: str = ""
    """Stripe's publishable key (pk_...): the order page takes the card with Stripe Elements.
    Unset: the clearly marked test mode (Stripe's test card tokens)."""


class ClientTuning(Tuning):
    """How the web client runs."""

    client_api_timeout_seconds: float = Field(default=10.0, gt=0)
    # Tickets per page on the home page.
    client_page_size: int = Field(default=12, ge=1, le=100)
    # How long a purchase or payment waits for orders/payments to learn of a ticket or order
    # that was only just created (their replicas are fed by events): a 404 is retried meanwhile.
    client_replica_wait_seconds: float = Field(default=5.0, ge=0)


class Settings(ClientTuning, ClientKnobs):
    """The web client's settings: its knobs and tuning."""

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
    def api_routes(self) -> tuple[tuple[str, str], ...]:
        """API path prefix -> the base URL of the service that serves it (the gateway's table)."""
        return (
            ("/api/users", self.client_auth_url),
            ("/api/tickets", self.client_tickets_url),
            ("/api/orders", self.client_orders_url),
            ("/api/payments", self.client_payments_url),
        )

    @property
    def csrf_secret(self) -> str:
        # Unset only in development (the validator refuses it anywhere else): the public key.
        key = self.client_csrf_key
        return key.get_secret_value() if key is not None else DEV_CSRF_KEY


@cache
def get_settings() -> Settings:
    return Settings()
