"""Dependencies of the orders routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ticketing_common.auth import CurrentUser
from ticketing_common.paging import Page, paging
from ticketing_common.service import runtime_of
from ticketing_orders.runtime import OrdersRuntime

RuntimeDep = Annotated[OrdersRuntime, Depends(runtime_of(OrdersRuntime))]
PageDep = Annotated[Page, Depends(paging("an order"))]

__all__ = ["CurrentUser", "PageDep", "RuntimeDep"]
