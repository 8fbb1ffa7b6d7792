"""The auth service: `uvicorn --factory ticketing_auth.main:create_app`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ticketing_auth import repository
from ticketing_auth.api.routes import users
from ticketing_auth.runtime import open_runtime
from ticketing_auth.settings import Settings, get_settings
from ticketing_common.bus import Bus
from ticketing_common.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="auth",
    routers=[users.router],
    open_runtime=open_runtime,
    indexes=repository.INDEXES,
    outbox_collections=[repository.USERS],
)


def create_app(
    settings: Settings | None = None, *, mongo: Any = None, bus: Bus | None = None
) -> FastAPI:
    return create_service_app(SPEC, settings or get_settings(), mongo=mongo, bus=bus)
