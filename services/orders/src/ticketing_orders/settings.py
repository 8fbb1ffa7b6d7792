"""Orders settings: the common ones, named for this service, plus the order hold time, the
open orders a buyer may hold, and the sweep of reservations nobody confirmed."""

from __future__ import annotations

from functools import cache

from pydantic import Field

from ticketing_common.settings import ExpiryGraceKnobs, ExpirySweepTuning, ServiceSettings
from ticketing_orders.buyers import DEFAULT_MAX_OPEN_ORDERS


class OrdersKnobs(ExpiryGraceKnobs):
    """What a deployer sets for orders; EXPIRY_GRACE_SECONDS (shared with expiration): when an
    order whose buyer never confirmed its reservation (it died mid-way) is dropped."""

    order_expiration_seconds: int = 15 * 60
    """How long a new order holds its ticket before it expires (the SPEC's 15 minutes)."""
    # So that one account cannot hold every listing.
    max_open_orders_per_user: int = Field(default=DEFAULT_MAX_OPEN_ORDERS, ge=1)
    """How many open orders one buyer may hold at once."""


class Settings(ExpirySweepTuning, OrdersKnobs, ServiceSettings):
    """Orders' settings; EXPIRY_SWEEP_SECONDS is how often each orders process sweeps for the
    unconfirmed reservations whose time and grace are up."""

    service_name: str = "orders"


@cache
def get_settings() -> Settings:
    return Settings()
