"""Orders settings: the common ones, named for this service, plus the order hold time."""

from __future__ import annotations

from functools import cache

from ticketing_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "orders"
    # How long a new order holds its ticket before expiration cancels it (ORDER_EXPIRATION_SECONDS).
    order_expiration_seconds: int = 15 * 60
    # An open order is cancelled by orders itself this long after its expiresAt, should
    # expiration's event not come (EXPIRY_GRACE_SECONDS, the same setting expiration waits).
    expiry_grace_seconds: float = 5.0
    # How often each orders process looks for such orders (EXPIRY_SWEEP_SECONDS).
    expiry_sweep_seconds: float = 1.0


@cache
def get_settings() -> Settings:
    return Settings()
