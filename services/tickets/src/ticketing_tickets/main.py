"""The tickets service: `uvicorn --factory ticketing_tickets.main:create_app`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ticketing_common.bus import Bus
from ticketing_common.service import ServiceSpec, create_service_app
from ticketing_tickets import listeners, repository
from ticketing_tickets.api.routes import tickets
from ticketing_tickets.runtime import open_runtime
from ticketing_tickets.settings import Settings, get_settings

SPEC = ServiceSpec(
    name="tickets",
    routers=[tickets.router],
    open_runtime=open_runtime,
    handlers=listeners.HANDLERS,
    indexes=repository.INDEXES,
    outbox_collections=[repository.TICKETS],
)


def create_app(
    settings: Settings | None = None, *, mongo: Any = None, bus: Bus | None = None
) -> FastAPI:
    return create_service_app(SPEC, settings or get_settings(), mongo=mongo, bus=bus)
