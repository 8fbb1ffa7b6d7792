"""A consumer's lanes: its deliveries handled at once, each record's one at a time in order.

A consumer runs up to `NATS_CONCURRENCY` deliveries at once (different records in parallel, so a
burst does not queue behind one Mongo round trip), while the deliveries of one record run one
after the other in the order they were fetched: its events stay in version order and a handler
never races another for the same record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ticketing_common.bus.contract import MessageId


class Lanes:
    """Runs a consumer's deliveries at once, at most `limit` in flight, while each record's
    deliveries run one at a time in the order they were fetched (its events stay in version
    order; a handler never races another for the same record)."""

    def __init__(self, limit: int, *, freed: Callable[[], None] | None = None) -> None:
        self.limit = max(limit, 1)
        self._busy = 0
        self._room = asyncio.Event()
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._messages: set[MessageId] = set()
        # Called each time a slot frees (the JetStream puller asks for more then).
        self._freed = freed

    @property
    def free(self) -> int:
        """Slots free now (negative when more was handed in than the limit)."""
        return self.limit - self._busy

    async def room(self) -> int:
        """Wait for a free slot; how many there are."""
        while self._busy >= self.limit:
            self._room.clear()
            await self._room.wait()
        return self.limit - self._busy

    def holds(self, message: MessageId) -> bool:
        """Whether `message` is in a lane already (handled or waiting its turn)."""
        return message in self._messages

    def submit(
        self, key: str, work: Callable[[], Awaitable[None]], *, message: MessageId | None = None
    ) -> None:
        """Run `work` after the work already submitted for `key` (call `room` first). While it
        waits its turn nothing signals progress: behind a slow or hung predecessor it is handed
        out again after ack_wait, like any message, and handled idempotently."""
        self._busy += 1
        task = asyncio.create_task(self._run(key, self._tails.get(key), work))
        self._tails[key] = task
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        if message is not None:  # a message (`holds` asks about it), not a give-back
            self._messages.add(message)
            task.add_done_callback(lambda _: self._messages.discard(message))

    async def _run(
        self, key: str, before: asyncio.Task[None] | None, work: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            if before is not None:
                await asyncio.wait({before})
            await work()
        finally:
            self._busy -= 1
            self._room.set()
            if self._freed is not None:
                self._freed()
            if self._tails.get(key) is asyncio.current_task():
                del self._tails[key]

    async def close(self) -> None:
        """Cancel what is in flight (JetStream redelivers it after ack_wait)."""
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(set(self._running))
        self._tails.clear()
