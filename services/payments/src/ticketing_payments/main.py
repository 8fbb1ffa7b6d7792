"""The payments service: `uvicorn --factory ticketing_payments.main:create_app`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

from ticketing_common.bus import Bus
from ticketing_common.service import Runtime, ServiceSpec, create_service_app
from ticketing_payments import listeners, repository
from ticketing_payments.api.routes import payments
from ticketing_payments.charges import StripeCharger
from ticketing_payments.deps import CHARGER
from ticketing_payments.settings import Settings, get_settings


async def _startup(runtime: Runtime) -> None:
    assert isinstance(runtime.settings, Settings)
    # Building the client loads the CA bundle from disk: off the loop too.
    runtime.extras[CHARGER] = await asyncio.to_thread(StripeCharger, runtime.settings)


async def _shutdown(runtime: Runtime) -> None:
    charger: StripeCharger | None = runtime.extras.pop(CHARGER, None)
    if charger is not None:
        await charger.close()


SPEC = ServiceSpec(
    name="payments",
    routers=[payments.router],
    indexes=repository.INDEXES,
    outbox_collections=[repository.PAYMENTS],
    subscriptions=listeners.subscriptions,
    on_startup=_startup,
    on_shutdown=_shutdown,
)


def create_app(
    settings: Settings | None = None, *, mongo: Any = None, bus: Bus | None = None
) -> FastAPI:
    return create_service_app(SPEC, settings or get_settings(), mongo=mongo, bus=bus)
