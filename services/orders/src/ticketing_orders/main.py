"""The orders service: `uvicorn --factory ticketing_orders.main:create_app`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ticketing_common.bus import Bus
from ticketing_common.service import Runtime, ServiceSpec, create_service_app
from ticketing_orders import expiry, listeners, repository
from ticketing_orders.api.routes import orders
from ticketing_orders.settings import Settings, get_settings


async def _startup(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    expiry.start(runtime, settings)


async def _shutdown(runtime: Runtime) -> None:
    await expiry.stop(runtime)


SPEC = ServiceSpec(
    name="orders",
    routers=[orders.router],
    indexes=repository.INDEXES,
    outbox_collections=[repository.ORDERS],
    subscriptions=listeners.subscriptions,
    on_startup=_startup,
    on_shutdown=_shutdown,
)


def create_app(
    settings: Settings | None = None, *, mongo: Any = None, bus: Bus | None = None
) -> FastAPI:
    return create_service_app(SPEC, settings or get_settings(), mongo=mongo, bus=bus)
