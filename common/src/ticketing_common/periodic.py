"""A piece of work a process repeats from start to stop (the services' sweeps)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("ticketing.periodic")

__all__ = [
    "Periodic",
]


class Periodic:
    """Runs `work` every `every` seconds in a task of its own, from `start` to `stop`; a round
    that fails (Mongo down) is logged and the next one tries again: nothing is lost by waiting."""

    def __init__(self, name: str, work: Callable[[], Awaitable[object]], *, every: float) -> None:
        self.name = name
        self.work = work
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def _forever(self) -> None:
        while True:
            try:
                await self.work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(f"{self.name} failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
