"""The payments service: `uvicorn --factory ticketing_payments.main:create_app`."""

from __future__ import annotations

from ticketing_common.bus import Dependency
from ticketing_common.events import Subject
from ticketing_common.service import ServiceSpec
from ticketing_payments import listeners, repository
from ticketing_payments.api.routes import payments
from ticketing_payments.runtime import open_runtime
from ticketing_payments.settings import get_settings

SPEC = ServiceSpec(
    name="payments",
    routers=[payments.router],
    open_runtime=open_runtime,
    handlers=listeners.HANDLERS,
    # Capture and void call Stripe: while it fails, they wait, and the replica of new orders
    # (which a buyer's payment needs) goes on.
    needs={
        Subject.ORDER_COMPLETED: frozenset({Dependency.STRIPE}),
        Subject.ORDER_CANCELLED: frozenset({Dependency.STRIPE}),
    },
    indexes=repository.INDEXES,
    settings=get_settings,
    outbox_collections=[repository.PAYMENTS],
)

create_app = SPEC.create_app
