"""The orders service: `uvicorn --factory ticketing_orders.main:create_app`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ticketing_common.bus import Bus
from ticketing_common.service import ServiceSpec, create_service_app
from ticketing_orders import listeners, state
from ticketing_orders.api.routes import orders
from ticketing_orders.runtime import open_runtime
from ticketing_orders.settings import Settings, get_settings

SPEC = ServiceSpec(
    name="orders",
    routers=[orders.router],
    open_runtime=open_runtime,
    handlers=listeners.HANDLERS,
    indexes=state.INDEXES,
    outbox_collections=[state.ORDERS],
)


def create_app(
    settings: Settings | None = None, *, mongo: Any = None, bus: Bus | None = None
) -> FastAPI:
    return create_service_app(SPEC, settings or get_settings(), mongo=mongo, bus=bus)
