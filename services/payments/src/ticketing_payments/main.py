"""The payments service: `uvicorn --factory ticketing_payments.main:create_app`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ticketing_common.bus import Bus
from ticketing_common.service import ServiceSpec, create_service_app
from ticketing_payments import listeners, repository
from ticketing_payments.api.routes import payments
from ticketing_payments.runtime import open_runtime
from ticketing_payments.settings import Settings, get_settings

SPEC = ServiceSpec(
    name="payments",
    routers=[payments.router],
    open_runtime=open_runtime,
    handlers=listeners.HANDLERS,
    indexes=repository.INDEXES,
    outbox_collections=[repository.PAYMENTS],
)


def create_app(
    settings: Settings | None = None, *, mongo: Any = None, bus: Bus | None = None
) -> FastAPI:
    return create_service_app(SPEC, settings or get_settings(), mongo=mongo, bus=bus)
