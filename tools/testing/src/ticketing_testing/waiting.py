"""Waiting for what happens in the background: a condition, a bus, the events it carries."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import httpx

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 5.0,
    *,
    interval: float = 0.01,
    http_errors: bool = False,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    timeout: float = 5.0,
    *,
    interval: float = 0.01,
    http_errors: bool = False,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout: float = 5.0,
    *,
    interval: float = 0.01,
    http_errors: bool = False,
) -> Any:
    """Poll `check` (a function or a coroutine function) until it returns something truthy, and
    return that. An AssertionError counts as "not yet", and so does an httpx error with
    `http_errors` (a process being restarted does not answer); at the deadline the last one is
    raised, else TimeoutError."""
    not_yet: tuple[type[Exception], ...] = (
        (AssertionError, httpx.HTTPError) if http_errors else (AssertionError,)
    )
    deadline = time.monotonic() + timeout
    while True:
        last: Exception | None = None
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except not_yet as exc:
            last = exc
        if time.monotonic() > deadline:
            if last is not None:
                raise last
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def started(bus: Any) -> Any:
    """Start a bus and, for a real one, wait until it is connected."""
    await bus.start()
    if hasattr(bus, "wait_connected"):
        await bus.wait_connected(10)
    return bus


async def published(bus: Any, subject: Any, count: int) -> list[Any]:
    """Wait until exactly `count` events of `subject` are on the in-memory bus (the outbox
    relay publishes in the background) and return them."""

    def check() -> list[Any]:
        events: list[Any] = bus.published_on(subject)
        assert len(events) == count, events
        return events

    if count == 0:
        await bus.drain()
        assert bus.published_on(subject) == []
        return []
    return await eventually(check)
