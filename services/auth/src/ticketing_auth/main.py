"""The auth service: `uvicorn --factory ticketing_auth.main:create_app`."""

from __future__ import annotations

from ticketing_auth import repository
from ticketing_auth.api.routes import users
from ticketing_auth.runtime import open_runtime
from ticketing_auth.settings import get_settings
from ticketing_common.service import ServiceSpec

SPEC = ServiceSpec(
    name="auth",
    routers=[users.router],
    open_runtime=open_runtime,
    indexes=repository.INDEXES,
    settings=get_settings,
    outbox_collections=[repository.USERS],
    # Asked on every page the web client renders.
    direct=[users.current_user],
)

create_app = SPEC.create_app
