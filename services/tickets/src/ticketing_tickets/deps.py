"""Dependencies of the tickets routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ticketing_common.auth import CurrentUser, OptionalUser
from ticketing_common.paging import Page, paging
from ticketing_common.service import runtime_of
from ticketing_tickets.runtime import TicketsRuntime

RuntimeDep = Annotated[TicketsRuntime, Depends(runtime_of(TicketsRuntime))]
PageDep = Annotated[Page, Depends(paging("a ticket"))]

__all__ = ["CurrentUser", "OptionalUser", "PageDep", "RuntimeDep"]
