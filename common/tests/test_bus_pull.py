"""The standing pull stops when cancelled, even when nats-py swallows the cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from ticketing_common.bus.jetstream._pull import StandingPull


class _Sub:
    async def unsubscribe(self) -> None:
        return None


class _SwallowingClient:
    """A connection whose publish swallows a cancellation, as nats-py's does when one lands
    while it waits to kick its flusher (`Client._flush_pending`)."""

    stats = {"reconnects": 0}
    is_connected = True

    def __init__(self) -> None:
        self.publishing = asyncio.Event()

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, inbox: str, cb: Any) -> _Sub:
        return _Sub()

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        self.publishing.set()
        with contextlib.suppress(asyncio.CancelledError):  # as nats-py's `except ...: pass`
            await asyncio.sleep(3600)


class _Lanes:
    limit = free = 16


class _Dispatcher:
    def paused(self, durable: str) -> bool:
        return False


async def test_a_pull_cancelled_inside_a_swallowing_publish_stops() -> None:
    client = _SwallowingClient()
    pull = StandingPull(
        client,  # type: ignore[arg-type]
        stream="ORDERS",
        durable="tickets-order-created",
        lanes=_Lanes(),  # type: ignore[arg-type]
        dispatcher=_Dispatcher(),  # type: ignore[arg-type]
        deliver=lambda msg: None,
        wake=asyncio.Event(),
    )
    task = asyncio.create_task(pull.run())
    await asyncio.wait_for(client.publishing.wait(), 5)
    task.cancel()
    # Without the check, the loop went on to wait for a wake-up forever: the bus's close hung.
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
