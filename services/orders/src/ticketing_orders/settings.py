"""Orders settings: the common ones, named for this service, plus the order hold time."""

from __future__ import annotations

from functools import cache

from pydantic import Field

from ticketing_common.settings import ServiceSettings
from ticketing_orders.buyers import DEFAULT_MAX_OPEN_ORDERS


class Settings(ServiceSettings):
    service_name: str = "orders"
    # How long a new order holds its ticket before expiration cancels it (ORDER_EXPIRATION_SECONDS).
    order_expiration_seconds: int = 15 * 60
    # How many open orders one buyer may hold at once (MAX_OPEN_ORDERS_PER_USER), so that one
    # account cannot hold every listing.
    max_open_orders_per_user: int = Field(default=DEFAULT_MAX_OPEN_ORDERS, ge=1)
    # An order whose buyer never confirmed its reservation (it died mid-way) is dropped this
    # long after its expiresAt (EXPIRY_GRACE_SECONDS, the same setting expiration waits)...
    expiry_grace_seconds: float = 5.0
    # ...by a sweep of each orders process this often (EXPIRY_SWEEP_SECONDS).
    expiry_sweep_seconds: float = 1.0


@cache
def get_settings() -> Settings:
    return Settings()
