"""Dependencies of the tickets routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ticketing_common.auth import CurrentUser, OptionalUser
from ticketing_common.service import DbDep, RuntimeDep
from ticketing_tickets.settings import Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]

__all__ = ["CurrentUser", "DbDep", "OptionalUser", "RuntimeDep"]
