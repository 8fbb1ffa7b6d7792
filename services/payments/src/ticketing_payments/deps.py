"""Dependencies of the payments routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ticketing_common.auth import CurrentUser
from ticketing_common.service import DbDep, RuntimeDep
from ticketing_payments.charges import StripeCharger
from ticketing_payments.settings import Settings

CHARGER = "stripe_charger"


def get_settings(runtime: RuntimeDep) -> Settings:
    # The app's own settings (tests pass theirs to create_app), not the process-wide cache.
    settings = runtime.settings
    assert isinstance(settings, Settings)
    return settings


def get_charger(runtime: RuntimeDep) -> StripeCharger:
    charger: StripeCharger = runtime.extras[CHARGER]
    return charger


SettingsDep = Annotated[Settings, Depends(get_settings)]
ChargerDep = Annotated[StripeCharger, Depends(get_charger)]

__all__ = ["ChargerDep", "CurrentUser", "DbDep", "RuntimeDep", "SettingsDep"]
