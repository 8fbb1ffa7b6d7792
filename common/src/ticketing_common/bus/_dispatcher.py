"""The delivery loop: one delivery from its handler's run to its settlement.

Shared by both buses (`JetStreamBus`, `InMemoryBus`), so the fake behaves as the real one does:
what a handler's outcome means is `contract`'s, when a delivery is offered again or dead is
`policy`'s; here they are applied. A delivery held for a dependency pauses the consumers that
need it (`Dispatcher.paused`, which the pullers ask before they ask the server for more).

While any handler runs, the message's ack deadline is pushed back (`in_progress`) every third
of `ack_wait`, so a handler slower than ack_wait (a Stripe call) is never redelivered to another
process concurrently; a handler that runs longer than `max_handler_seconds` is taken for hung
and its message is left to expire to another process.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, Unpack

from ticketing_common.bus import _observe
from ticketing_common.bus.contract import (
    EVERYONE_NEEDS,
    Delivery,
    Handler,
    MessageId,
    RetryLater,
    dependency_of,
)
from ticketing_common.bus.policy import UNLIMITED, Outcome, RetryPolicy, Verdict, decide
from ticketing_common.events import EventDecodeError
from ticketing_common.telemetry.tracing import annotate_event

log = logging.getLogger("ticketing.bus")


class Handling(TypedDict):
    """How the dispatcher handles one delivery (see `Dispatcher._process`)."""

    durable: str
    policy: RetryPolicy
    ack_wait: float
    max_handler_seconds: float
    server_max_deliver: NotRequired[int]


@dataclass
class _Running:
    """What the progress signaller needs to know about the handler call in progress."""

    since: float | None = None
    warned: bool = False


class Dispatcher:
    """The delivery loop of one bus (one process): runs handlers, holds messages while a
    dependency is down, counts failures and settles each message. Both buses use it, so the
    fake behaves as the real one does."""

    # Failure counts are kept for messages not settled yet; a message taken over by another
    # process is never settled here, so the table is bounded.
    MAX_TRACKED = 10_000
    STILL_HOLDING_LOG_SECONDS = 60.0

    def __init__(self, service: str) -> None:
        self.service = service
        # Per durable, the dependencies its handler needs (None: undeclared, so any hold
        # pauses it, as conservatively as a service-wide pause).
        self._needs: dict[str, frozenset[str] | None] = {}
        # Deliveries held now, per (durable, dependency).
        self._holds: collections.Counter[tuple[str, str]] = collections.Counter()
        # Set (and replaced) each time a hold ends: the paused re-check whether they still are.
        self._released = asyncio.Event()
        self._failures: OrderedDict[tuple[str, MessageId], int] = OrderedDict()

    def declare(self, durable: str, needs: frozenset[str] | None) -> None:
        """What the handler of `durable` needs besides the bus: a hold on one of these pauses it."""
        self._needs[durable] = needs

    @property
    def holding(self) -> bool:
        """Whether a delivery is held because a dependency is down."""
        return bool(self._holds)

    def paused(self, durable: str) -> bool:
        """Whether `durable` must start nothing more: one of its own deliveries is held, or one
        for a dependency its handler needs (any, undeclared; every consumer needs the bus
        itself, and whatever a failure could not name)."""
        needs = self._needs.get(durable)
        return any(
            held == durable or needs is None or dependency in needs or dependency in EVERYONE_NEEDS
            for held, dependency in self._holds
        )

    async def wait_open(self, durable: str) -> None:
        """Return once `durable` is not paused: a consumer whose dependency is down pulls
        nothing more, while the service's others go on."""
        while self.paused(durable):
            await self._released.wait()

    def _hold(self, durable: str, dependency: str) -> None:
        self._holds[(durable, dependency)] += 1
        _observe.held(self.service, durable, dependency, +1)

    def _release(self, durable: str, dependency: str) -> None:
        _observe.held(self.service, durable, dependency, -1)
        key = (durable, dependency)
        self._holds[key] -= 1
        if self._holds[key] <= 0:
            del self._holds[key]
        released, self._released = self._released, asyncio.Event()
        released.set()

    def _count_failure(self, key: tuple[str, MessageId]) -> int:
        count = self._failures.pop(key, 0) + 1
        self._failures[key] = count
        while len(self._failures) > self.MAX_TRACKED:
            self._failures.popitem(last=False)
        return count

    async def process(
        self, delivery: Delivery, handler: Handler, **how: Unpack[Handling]
    ) -> Verdict:
        """Handle one delivery from start to settlement (ack, nak or dead letter), in a span
        of its own (a child of the publisher's) and counted in the metrics."""
        with _observe.observe_delivery(self.service, delivery) as observed:
            verdict = await self._process(delivery, handler, **how)
            observed.outcome = verdict.value
        return verdict

    async def _process(
        self,
        delivery: Delivery,
        handler: Handler,
        *,
        durable: str,
        policy: RetryPolicy,
        ack_wait: float,
        max_handler_seconds: float,
        server_max_deliver: int = UNLIMITED,
    ) -> Verdict:
        context: dict[str, Any] = {
            "service": self.service,
            "durable": durable,
            "subject": delivery.subject,
            "stream_seq": delivery.stream_seq,
        }
        running = _Running()
        # The progress signals start only once the delivery has run a third of ack_wait, which
        # most never do: a timer until then, not a task per delivery (a task made and
        # cancelled for each message cost more than the rest of the dispatching).
        beat: asyncio.Task[None] | None = None
        interval = max(ack_wait / 3, 0.01)

        def start_beat() -> None:
            nonlocal beat
            beat = asyncio.create_task(
                self._signal_progress(delivery, running, interval, max_handler_seconds, context),
                name=f"progress-{durable}",
            )

        timer = asyncio.get_running_loop().call_later(interval, start_beat)
        try:
            # A message fetched just as another one started to be held waits too (its ack
            # deadline pushed back meanwhile): no handler starts while what it needs is down.
            await self.wait_open(durable)
            outcome, error = await self._run(delivery, handler, durable, policy, running, context)
        finally:
            timer.cancel()
            if beat is not None:
                beat.cancel()
                # asyncio.wait, not `await beat`: suppressing the CancelledError of the latter
                # would also swallow a cancellation of this task (close()) arriving then.
                await asyncio.wait({beat})
        return await self._settle(
            delivery, outcome, error, durable, policy, server_max_deliver, context
        )

    async def _run(
        self,
        delivery: Delivery,
        handler: Handler,
        durable: str,
        policy: RetryPolicy,
        running: _Running,
        context: dict[str, Any],
    ) -> tuple[Outcome | None, str]:
        """Run the handler until it is done with the event (None), defers it or fails; while
        what it needs is down, hold the delivery and run it again (`_Hold`)."""
        try:
            event = delivery.event()
        except EventDecodeError as exc:
            log.warning("undecodable message", extra={**context, "error": str(exc)})
            return Outcome.FAILED, str(exc)
        context["event_id"] = event.id
        annotate_event(event)
        hold = _Hold(self, durable, context)
        try:
            while True:
                running.since, running.warned = time.monotonic(), False
                try:
                    await handler(event)
                except RetryLater as exc:
                    log.info(
                        "event deferred",
                        extra={**context, "delivered": delivery.delivered, "reason": str(exc)},
                    )
                    return Outcome.RETRY_LATER, f"retry later: {exc}"
                except Exception as exc:
                    dependency = dependency_of(exc)
                    if dependency is None:
                        log.warning(
                            "handler failed",
                            exc_info=exc,
                            extra={**context, "delivered": delivery.delivered},
                        )
                        return Outcome.FAILED, f"{type(exc).__name__}: {exc}"
                    hold.failed(dependency, exc)
                    running.since = None
                    await asyncio.sleep(policy.hold_delay(hold.attempts))
                    continue
                finally:
                    running.since = None
                return None, ""
        finally:
            hold.end()

    async def _signal_progress(
        self,
        delivery: Delivery,
        running: _Running,
        interval: float,
        max_handler_seconds: float,
        context: dict[str, Any],
    ) -> None:
        """Extend the delivery's ack deadline every `interval` (a third of ack_wait), from one
        interval in (see `_process`), until its handler has run max_handler_seconds."""
        while True:
            since = running.since
            if since is not None and time.monotonic() - since > max_handler_seconds:
                if not running.warned:
                    running.warned = True
                    log.error(
                        "handler hung: no longer extending its ack deadline",
                        extra={**context, "max_handler_seconds": max_handler_seconds},
                    )
            else:
                try:
                    await delivery.progress()
                except Exception as exc:
                    # Disconnected: the message may be redelivered after ack_wait, and the
                    # handler, being idempotent, does nothing the second time.
                    log.info("progress signal failed", extra={**context, "error": repr(exc)})
            await asyncio.sleep(interval)

    async def _settle(
        self,
        delivery: Delivery,
        outcome: Outcome | None,
        error: str,
        durable: str,
        policy: RetryPolicy,
        server_max_deliver: int,
        context: dict[str, Any],
    ) -> Verdict:
        key = (durable, delivery.message)
        if outcome is None:
            self._failures.pop(key, None)
            await delivery.ack()
            return Verdict.ACK
        failures = (
            self._count_failure(key) if outcome is Outcome.FAILED else self._failures.get(key, 0)
        )
        decision = decide(
            outcome,
            error=error,
            delivered=delivery.delivered,
            failures=failures,
            age=delivery.age,
            policy=policy,
            server_max_deliver=server_max_deliver,
        )
        if decision.verdict is Verdict.NAK:
            await delivery.nak(decision.delay)
            return Verdict.NAK
        log.error(
            "event dead-lettered",
            extra={**context, "delivered": delivery.delivered, "error": decision.error},
        )
        try:
            await delivery.dead(decision.error)
        except Exception:
            if 0 < server_max_deliver <= delivery.delivered:
                # JetStream will not offer it again: the log is the one place left.
                log.error(
                    "dead letter not stored",
                    extra={**context, "payload": delivery.payload.decode(errors="replace")},
                )
                raise
            # Not stored: offer it again later; it will be dead-lettered then.
            log.warning("dead letter not stored, retrying later", extra=context)
            await delivery.nak(policy.max_retry_delay)
            return Verdict.NAK
        self._failures.pop(key, None)
        return Verdict.DEAD


class _Hold:
    """The dependency one delivery is held for while its handler is run again: the consumers
    that need it are paused (`Dispatcher.paused`) from the first failure until `end`, and the
    hold is logged when it starts, changes, every `STILL_HOLDING_LOG_SECONDS`, and ends."""

    def __init__(self, dispatcher: Dispatcher, durable: str, context: dict[str, Any]) -> None:
        self.dispatcher, self.durable, self.context = dispatcher, durable, context
        self.dependency: str | None = None  # what it is held for, since `since`
        self.since = 0.0
        self.last_log = 0.0
        self.attempts = 0  # failed runs while held: the backoff's exponent

    def failed(self, dependency: str, exc: Exception) -> None:
        """The handler failed because `dependency` is unreachable."""
        now = time.monotonic()
        error = f"{type(exc).__name__}: {exc}"
        if dependency != self.dependency:
            # Held for the first time, or now for another dependency (Mongo failing where
            # Stripe did): pause what needs this one.
            if self.dependency is None:
                self.since = now
            else:
                self.dispatcher._release(self.durable, self.dependency)
            self.dispatcher._hold(self.durable, dependency)
            self.dependency, self.last_log = dependency, now
            log.warning(
                "dependency unavailable: holding the event and pausing the consumers that need it",
                extra={**self.context, "dependency": dependency, "error": error},
            )
        elif now - self.last_log >= self.dispatcher.STILL_HOLDING_LOG_SECONDS:
            self.last_log = now
            log.warning(
                "dependency still unavailable",
                extra={
                    **self.context,
                    "dependency": dependency,
                    "held_seconds": round(now - self.since),
                    "error": error,
                },
            )
        self.attempts += 1

    def end(self) -> None:
        """The delivery is no longer held (its handler ran, or it is being given up)."""
        if self.dependency is None:
            return
        self.dispatcher._release(self.durable, self.dependency)
        log.info(
            "dependency back: resuming",
            extra={
                **self.context,
                "dependency": self.dependency,
                "held_seconds": round(time.monotonic() - self.since, 3),
            },
        )
