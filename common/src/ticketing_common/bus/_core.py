"""What a bus holds whatever carries its messages: the base both buses are built on.

Its service, its delivery settings (`BusTuning`, read into a `RetryPolicy` per delivery), the
handlers subscribed before `start`, each consumer's lanes, and the dispatcher that decides each
delivery. A carrier (`jetstream`, `memory`) fetches deliveries and hands each to `_submit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypedDict

from ticketing_common.bus._dispatcher import Dispatcher
from ticketing_common.bus._lanes import Lanes
from ticketing_common.bus.contract import Delivery, Handler
from ticketing_common.bus.policy import (
    DEFAULT_RETRY_HORIZON,
    MAX_HOLD_DELAY,
    MAX_RETRY_DELAY,
    RetryPolicy,
)
from ticketing_common.bus.streams import durable_name
from ticketing_common.events import Subject

log = logging.getLogger("ticketing.bus")

DEFAULT_MAX_HANDLER_SECONDS = 300.0
# Deliveries a consumer handles at once (different records; one record's one at a time).
DEFAULT_CONCURRENCY = 16


class BusTuning(TypedDict, total=False):
    """The delivery settings both buses take (see `BusCore`)."""

    ack_wait: float
    max_deliver: int
    retry_delay: float
    max_retry_delay: float
    retry_horizon: float
    max_hold_delay: float
    max_handler_seconds: float
    concurrency: int


class BusCore:
    """What a bus holds whatever carries its messages: its service, delivery settings, the
    dispatcher that decides each delivery, and the handlers subscribed before `start`."""

    def __init__(
        self,
        service: str,
        *,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        retry_delay: float = 0.5,
        max_retry_delay: float = MAX_RETRY_DELAY,
        retry_horizon: float = DEFAULT_RETRY_HORIZON,
        max_hold_delay: float = MAX_HOLD_DELAY,
        max_handler_seconds: float = DEFAULT_MAX_HANDLER_SECONDS,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.service = service
        self.concurrency = concurrency
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.retry_horizon = retry_horizon
        self.max_hold_delay = max_hold_delay
        self.max_handler_seconds = max_handler_seconds
        self.dispatcher = Dispatcher(service)
        self._handlers: list[tuple[Subject, Handler]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lanes: list[Lanes] = []

    @property
    def policy(self) -> RetryPolicy:
        """Read per delivery, so a test may change `max_deliver` on a running bus."""
        return RetryPolicy(
            max_deliver=self.max_deliver,
            retry_delay=self.retry_delay,
            max_retry_delay=self.max_retry_delay,
            horizon=self.retry_horizon,
            max_hold_delay=self.max_hold_delay,
        )

    def subscribe(
        self, subject: Subject, handler: Handler, *, needs: frozenset[str] | None = None
    ) -> None:
        self._handlers.append((subject, handler))
        self.dispatcher.declare(durable_name(self.service, subject), needs)

    def _new_lanes(self, *, freed: Callable[[], None] | None = None) -> Lanes:
        lanes = Lanes(self.concurrency, freed=freed)
        self._lanes.append(lanes)
        return lanes

    def _submit(
        self,
        lanes: Lanes,
        delivery: Delivery,
        handler: Handler,
        *,
        ack_wait: float,
        server_max_deliver: int,
    ) -> None:
        """Hand one fetched delivery to the dispatcher, in its record's lane."""
        if lanes.holds(delivery.message):
            # Handed out again while this process still has it: its handler ran past
            # max_handler_seconds (hung), so give it back for another process to take rather
            # than queue it behind the hung one for ever.
            lanes.submit(f"#again{delivery.stream_seq}", lambda: delivery.nak(ack_wait))
            return

        async def work() -> None:
            try:
                await self.dispatcher.process(
                    delivery,
                    handler,
                    durable=delivery.durable,
                    policy=self.policy,
                    ack_wait=ack_wait,
                    max_handler_seconds=self.max_handler_seconds,
                    server_max_deliver=server_max_deliver,
                )
            except Exception as exc:
                # The broker went away while settling: redelivered after ack_wait, decided again.
                log.warning(
                    "delivery not settled",
                    extra={"durable": delivery.durable, "error": repr(exc)},
                )

        lanes.submit(delivery.key, work, message=delivery.message)

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for lanes in self._lanes:
            await lanes.close()
        self._lanes.clear()
