"""Dependencies of the orders routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ticketing_common.auth import CurrentUser
from ticketing_common.service import DbDep, RuntimeDep
from ticketing_orders.settings import Settings


def get_orders_settings(runtime: RuntimeDep) -> Settings:
    """The settings the app was built with (tests pass their own), typed as this service's."""
    settings = runtime.settings
    if not isinstance(settings, Settings):
        raise TypeError("the orders app must be built with ticketing_orders.settings.Settings")
    return settings


SettingsDep = Annotated[Settings, Depends(get_orders_settings)]

__all__ = ["CurrentUser", "DbDep", "RuntimeDep", "SettingsDep"]
