"""Orders settings: the common ones, named for this service, plus the order hold time."""

from __future__ import annotations

from functools import cache

from ticketing_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "orders"
    # How long a new order holds its ticket before expiration cancels it (ORDER_EXPIRATION_SECONDS).
    order_expiration_seconds: int = 15 * 60


@cache
def get_settings() -> Settings:
    return Settings()
