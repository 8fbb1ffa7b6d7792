"""Dependencies of the payments routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ticketing_common.auth import CurrentUser
from ticketing_common.service import runtime_of
from ticketing_payments.runtime import PaymentsRuntime

RuntimeDep = Annotated[PaymentsRuntime, Depends(runtime_of(PaymentsRuntime))]

__all__ = ["CurrentUser", "RuntimeDep"]
