"""The expiration service's runtime: the shared resources (no database), typed with its
settings, and its Redis client and RQ queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis import Redis
from rq import Queue

from ticketing_common.service import OpenRuntime, Runtime
from ticketing_expiration import job_guard, repository
from ticketing_expiration.settings import Settings


@dataclass(frozen=True)
class ExpirationRuntime(Runtime[Settings]):
    redis: Redis
    # Where the expiry jobs are scheduled (the worker runs them).
    queue: Queue


def opener(redis: Redis | None = None) -> OpenRuntime[Settings, ExpirationRuntime]:
    """The runtime's opener; `redis` (tests: fakeredis, left open) replaces a client built
    from REDIS_URL (closed on exit)."""

    @contextlib.asynccontextmanager
    async def open_runtime(shared: Runtime[Settings]) -> AsyncIterator[ExpirationRuntime]:
        client = redis if redis is not None else repository.connect(shared.settings.redis_url)
        queue = job_guard.make_queue(client, shared.settings.queue_name)
        try:
            yield ExpirationRuntime(**shared.shared(), redis=client, queue=queue)
        finally:
            if redis is None:
                await asyncio.to_thread(client.close)

    return open_runtime


open_runtime = opener()
