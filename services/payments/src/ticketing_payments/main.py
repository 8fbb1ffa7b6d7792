"""The payments service: `uvicorn --factory ticketing_payments.main:create_app`."""

from __future__ import annotations

from ticketing_common.service import ServiceSpec
from ticketing_payments import listeners, replica, repository
from ticketing_payments.api.routes import payments
from ticketing_payments.runtime import open_runtime
from ticketing_payments.settings import get_settings

SPEC = ServiceSpec(
    name="payments",
    routers=[payments.router],
    open_runtime=open_runtime,
    # Each with what it needs besides Mongo (Stripe, for capture and void).
    handlers=listeners.HANDLERS,
    indexes=[*repository.INDEXES, *replica.INDEXES],
    settings=get_settings,
    outbox_collections=[repository.PAYMENTS],
)

create_app = SPEC.create_app
