"""The orders service: `uvicorn --factory ticketing_orders.main:create_app`."""

from __future__ import annotations

from ticketing_common.service import ServiceSpec
from ticketing_orders import listeners, repository
from ticketing_orders.api.routes import orders
from ticketing_orders.runtime import open_runtime
from ticketing_orders.settings import get_settings

SPEC = ServiceSpec(
    name="orders",
    routers=[orders.router],
    open_runtime=open_runtime,
    handlers=listeners.HANDLERS,
    indexes=repository.INDEXES,
    settings=get_settings,
    outbox_collections=[repository.ORDERS],
)

create_app = SPEC.create_app
