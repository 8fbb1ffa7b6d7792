"""The expiration service: `uvicorn --factory ticketing_expiration.main:create_app`.

It has no database and no routes of its own (only /healthz and /readyz): it turns order events
into RQ jobs in Redis. The jobs are run by `python -m ticketing_expiration.worker`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from redis import Redis

from ticketing_common.bus import Bus
from ticketing_common.service import ServiceSpec
from ticketing_expiration import firing, listeners
from ticketing_expiration.runtime import ExpirationRuntime, opener
from ticketing_expiration.settings import Settings, get_settings


async def redis_ready(runtime: ExpirationRuntime) -> str | None:
    """The readiness check: None when Redis answers a PING."""
    try:
        await asyncio.to_thread(runtime.redis.ping)
    except Exception as exc:
        return f"redis: {type(exc).__name__}"
    return None


def build_spec(redis: Redis | None = None) -> ServiceSpec[Settings, ExpirationRuntime]:
    """The service's spec; `redis` (tests: fakeredis) replaces a client built from REDIS_URL."""
    return ServiceSpec(
        name="expiration",
        routers=[],
        open_runtime=opener(redis),
        # Both need Redis, where they keep their state (see listeners).
        handlers=listeners.HANDLERS,
        uses_mongo=False,
        readiness_checks=[redis_ready],
        scrape_hooks=[firing.refresh],
        settings=get_settings,
    )


SPEC = build_spec()


def create_app(
    settings: Settings | None = None,
    *,
    mongo: Any = None,
    bus: Bus | None = None,
    redis: Redis | None = None,
) -> FastAPI:
    spec = SPEC if redis is None else build_spec(redis)
    return spec.create_app(settings, mongo=mongo, bus=bus)
