"""Dependencies of the auth routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ticketing_auth.runtime import AuthRuntime
from ticketing_common.auth import CurrentUser, OptionalUser
from ticketing_common.service import runtime_of

RuntimeDep = Annotated[AuthRuntime, Depends(runtime_of(AuthRuntime))]

__all__ = ["CurrentUser", "OptionalUser", "RuntimeDep"]
