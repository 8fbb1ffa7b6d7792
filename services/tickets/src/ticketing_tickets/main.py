"""The tickets service: `uvicorn --factory ticketing_tickets.main:create_app`."""

from __future__ import annotations

from ticketing_common.service import ServiceSpec
from ticketing_tickets import listeners, repository
from ticketing_tickets.api.routes import tickets
from ticketing_tickets.runtime import open_runtime
from ticketing_tickets.settings import get_settings

SPEC = ServiceSpec(
    name="tickets",
    routers=[tickets.router],
    open_runtime=open_runtime,
    handlers=listeners.HANDLERS,
    indexes=repository.INDEXES,
    settings=get_settings,
    outbox_collections=[repository.TICKETS],
)

create_app = SPEC.create_app
