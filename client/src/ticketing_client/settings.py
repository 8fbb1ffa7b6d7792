"""The web client's settings, from environment variables (a cached factory, like every service)."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

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


@cache
def get_settings() -> Settings:
    return Settings()
