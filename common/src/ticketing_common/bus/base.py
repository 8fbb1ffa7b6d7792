"""What both bus implementations share: the handler contract and the delivery loop.

A handler is `async def handle(event) -> None`:
- returns: the event is done, ack it;
- raises `RetryLater`: not yet (an earlier event is still on its way): offered again with a
  capped exponential backoff for as long as it takes, and dead-lettered only once it has waited
  longer than the retry horizon (`NATS_RETRY_HORIZON_SECONDS`);
- raises an infrastructure failure (`dependency_of`: its own Mongo, Stripe or the broker is
  unreachable): not the event's fault, so it never uses up a delivery. The bus holds the
  message (telling JetStream it is in progress, so it is not redelivered elsewhere), stops
  starting handlers on the consumers that need that dependency (the held one's, and each whose
  subscription names it in `needs`; all of them for a failure it cannot attribute), and re-runs
  the same delivery with a capped backoff until the dependency is back; then everything resumes
  by itself. The other consumers go on: Stripe failing a capture must not keep new orders from
  payments' replica. If the process dies meanwhile, JetStream redelivers after ack_wait;
- raises anything else (or the bytes are not a valid event): a failure, offered again with a
  growing delay; after `max_deliver` failed deliveries it is dead-lettered (kept in the
  DEADLETTER stream with its error, logged, and terminated), so poison can never loop forever
  (flaw 3 of the app this replaces).

Counting. The server-side consumer has no delivery limit (`max_deliver = -1`): a count kept by
JetStream cannot tell a RetryLater deferral (harmless, must not run out) from a failure (must).
So the bus counts failures itself, per process and message, and decides about dead letters.
What the server does say is still obeyed: if a durable's actual `max_deliver` is finite (a
consumer that could not be reconciled), the delivery that reaches it is the last one JetStream
will make, so a failure there is dead-lettered rather than silently dropped.

The RetryLater horizon is measured from the server's facts, so a restart does not reset it: the
event's age in the stream, and the time its deliveries have spent in backoff (computed from the
server's delivery count). Dead-lettering needs both to exceed the horizon: age alone would
throw away the backlog of a consumer that comes back from a long outage (an event older than
the horizon whose predecessor is a few messages behind it), and the backoff estimate alone
could outrun the clock if deliveries were also spent on failures.

While any handler runs, the message's ack deadline is pushed back (`in_progress`) every third
of `ack_wait`, so a handler slower than ack_wait (a Stripe call) is never redelivered to another
process concurrently; a handler that runs longer than `max_handler_seconds` is taken for hung
and its message is left to expire to another process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, NotRequired, Protocol, TypedDict, Unpack

from ticketing_common.bus.streams import original_subject
from ticketing_common.events import Event, EventDecodeError, Subject, decode
from ticketing_common.telemetry.bus import held, observe_delivery
from ticketing_common.telemetry.tracing import annotate_event

log = logging.getLogger("ticketing.bus")

Handler = Callable[[Event[Any]], Awaitable[None]]
# A message of a stream: (its sequence, when the stream stored it); see `Delivery.message`.
MessageId = tuple[int, float]

MAX_RETRY_DELAY = 30.0
# A held delivery is re-run at most this far apart: the flow resumes within seconds of the
# dependency coming back, at the cost of one handler call per period while it is down.
MAX_HOLD_DELAY = 5.0
DEFAULT_RETRY_HORIZON = 3600.0
DEFAULT_MAX_HANDLER_SECONDS = 300.0
# Deliveries a consumer handles at once (different records; one record's one at a time).
DEFAULT_CONCURRENCY = 16
# JetStream's "no limit" for a consumer's max_deliver.
UNLIMITED = -1


class RetryLater(Exception):
    """Raised by a handler that cannot apply an event yet; the bus offers it again later."""


class BusUnavailable(Exception):
    """Publishing failed: not connected, or the server did not confirm in time."""


class PublishRefused(BusUnavailable):
    """The server refused to store the message for lack of room: its stream is at its
    max_bytes (a consumer down or behind), or the store is full. A dependency down, not poison:
    the outbox keeps the event and publishes it once there is room again."""

    def __init__(self, message: str, *, stream: str, reason: str) -> None:
        super().__init__(message)
        self.stream, self.reason = stream, reason


class Unpublishable(Exception):
    """The bus is up but this message can never be published as it is (its subject is in no
    stream, it is larger than the server accepts): retrying cannot help."""


class Dependency(StrEnum):
    """What a handler may need besides the event: a hold on one pauses only the consumers whose
    handlers need it (a subscription's `needs`)."""

    MONGO = "mongo"
    NATS = "nats"
    STRIPE = "stripe"
    REDIS = "redis"
    # A failure that does not say what is down: every consumer of the service pauses, the safe
    # guess (other handlers run against a dependency that is down would only fail too).
    UNKNOWN = "unknown"


class DependencyUnavailable(Exception):
    """A handler could not run because something it needs is down (its own database, the
    broker, Stripe answering 5xx or not at all): not the event's fault, so it must never use
    up the event's deliveries. Raise it naming the dependency (or let a pymongo connection
    error through); the bus holds the message, pauses the consumers that need that dependency,
    and retries once it is back."""

    def __init__(self, message: str = "", *, dependency: str = Dependency.UNKNOWN) -> None:
        super().__init__(message)
        # What is down ("redis", "stripe"...); unnamed, it pauses every consumer.
        self.dependency = dependency or Dependency.UNKNOWN


# What every consumer needs, declared or not: a hold for one of these pauses the whole service.
EVERYONE_NEEDS = frozenset({Dependency.NATS, Dependency.UNKNOWN})


def dependency_of(exc: BaseException) -> str | None:
    """The dependency whose being unreachable made a handler fail; None when the failure is not
    one of infrastructure (the event's fault, or a bug)."""
    from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError

    if isinstance(exc, DependencyUnavailable):
        return exc.dependency
    if isinstance(exc, BusUnavailable):
        return Dependency.NATS
    # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError are ConnectionFailures.
    if isinstance(exc, (ConnectionFailure, ExecutionTimeout, WTimeoutError)):
        return Dependency.MONGO
    if isinstance(exc, TimeoutError):
        # A bare timeout (asyncio.timeout around some call) names nothing: pause it all.
        return Dependency.UNKNOWN
    return None


def is_infrastructure_failure(exc: BaseException) -> bool:
    """Whether a handler failed because a dependency is unreachable, not because of the event."""
    return dependency_of(exc) is not None


@dataclass(frozen=True)
class DeadLetter:
    subject: str
    durable: str
    payload: bytes
    deliveries: int
    error: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Its sequence in the DEADLETTER stream (what `show` and `redrive` take), and the
    # original message's sequence in its own stream.
    seq: int = 0
    stream_seq: int = 0
    service: str = ""


class Verdict(Enum):
    ACK = "ack"
    NAK = "nak"
    DEAD = "dead"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0
    error: str = ""


class Outcome(Enum):
    RETRY_LATER = "retry later"
    FAILED = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often an event is offered again; one per bus, read per delivery."""

    max_deliver: int = 5  # failed deliveries (poison) before the dead letters
    retry_delay: float = 0.5  # the first delay; doubles each time
    max_retry_delay: float = MAX_RETRY_DELAY
    horizon: float = DEFAULT_RETRY_HORIZON  # how long a RetryLater event may wait
    max_hold_delay: float = MAX_HOLD_DELAY

    def backoff(self, n: int) -> float:
        """The delay before the (n+1)th offer, n >= 1; the exponent is bounded so a message
        offered thousands of times cannot overflow a float."""
        return min(self.retry_delay * 2.0 ** min(max(n, 1) - 1, 64), self.max_retry_delay)

    def hold_delay(self, n: int) -> float:
        return min(self.retry_delay * 2.0 ** min(max(n, 1) - 1, 64), self.max_hold_delay)

    def waited(self, delivered: int) -> float:
        """Time a message on its `delivered`th delivery has spent in backoff, had each earlier
        delivery been deferred (derived from the server's count, so it survives restarts)."""
        total = 0.0
        for n in range(1, delivered):
            step = self.backoff(n)
            if step >= self.max_retry_delay:
                return total + step * (delivered - n)
            total += step
        return total


def decide(
    outcome: Outcome,
    *,
    error: str,
    delivered: int,
    failures: int,
    age: float,
    policy: RetryPolicy,
    server_max_deliver: int = UNLIMITED,
) -> Decision:
    """What to do with a delivery that was not acked (pure: the delivery loop's rules).

    `delivered` is the server's count for this message, `failures` the bus's own count of its
    failed deliveries (this one included), `age` the seconds since the stream stored it.
    """
    if 0 < server_max_deliver <= delivered:
        # JetStream will not deliver it again: a nak now would lose it without a trace.
        return Decision(Verdict.DEAD, error=f"{error} (last delivery the server allows)")
    if outcome is Outcome.RETRY_LATER:
        if min(age, policy.waited(delivered)) >= policy.horizon:
            return Decision(Verdict.DEAD, error=f"{error} (waited past the retry horizon)")
        return Decision(Verdict.NAK, delay=policy.backoff(delivered), error=error)
    if failures >= policy.max_deliver:
        return Decision(Verdict.DEAD, error=error)
    return Decision(Verdict.NAK, delay=policy.backoff(failures), error=error)


def durable_name(service: str, subject: Subject) -> str:
    """One durable consumer per service and subject: `orders-ticket-created`."""
    return f"{service}-{subject.wire.replace('.', '-')}"


def header_text(text: str, limit: int = 500) -> str:
    """A header value: one line (a newline would break the NATS protocol), bounded."""
    return " ".join(text.split())[:limit]


class Delivery(ABC):
    """One delivery of one message, as each bus implementation presents it: the message's facts
    here, settling it (ack, nak, progress, dead-lettering) by the implementation."""

    def __init__(
        self,
        *,
        payload: bytes,
        subject: str,
        delivered: int,
        stream_seq: int,
        stored_at: float,
        durable: str,
        service: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.payload = payload
        self.subject = subject
        # The server's count of deliveries of this message, this one included.
        self.delivered = delivered
        self.stream_seq = stream_seq
        self.stored_at = stored_at  # wall clock, the stream's timestamp
        self.durable = durable
        self.service = service
        # The message's headers (its trace context among them).
        self.headers = headers
        self._event: Event[Any] | None = None

    def event(self) -> Event[Any]:
        """The message as an event, decoded once (raises EventDecodeError)."""
        if self._event is None:
            self._event = decode(self.payload)
        return self._event

    @property
    def key(self) -> str:
        """Its record: deliveries with one key are handled one at a time, in fetch order."""
        try:
            key: str = self.event().data.record_key
        except EventDecodeError:
            return f"#{self.stream_seq}"  # not an event: a lane of its own
        return key

    @property
    def message(self) -> MessageId:
        """The message, told apart from every other its stream holds or held: its sequence
        alone is not enough, since a stream whose store was wiped numbers from 1 again, and a
        new message must not inherit an old one's failure count or be taken for one in flight.
        The time the stream stored it never comes back."""
        return (self.stream_seq, self.stored_at)

    @property
    def age(self) -> float:
        """Seconds since the stream stored the message."""
        return max(time.time() - self.stored_at, 0.0)

    def letter(self, error: str) -> DeadLetter:
        """This message as a dead letter of its consumer, under its original subject."""
        return DeadLetter(
            subject=original_subject(self.subject, self.durable),
            durable=self.durable,
            payload=self.payload,
            deliveries=self.delivered,
            error=error,
            stream_seq=self.stream_seq,
            service=self.service,
        )

    @abstractmethod
    async def progress(self) -> None:
        """Push the ack deadline back: still being worked on."""

    @abstractmethod
    async def ack(self) -> None: ...

    @abstractmethod
    async def nak(self, delay: float) -> None: ...

    @abstractmethod
    async def dead(self, error: str) -> None:
        """Store it as a dead letter, then terminate it (raise if it could not be stored)."""


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
        held(self.service, durable, dependency, +1)

    def _release(self, durable: str, dependency: str) -> None:
        held(self.service, durable, dependency, -1)
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
        with observe_delivery(self.service, delivery) as observed:
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
        try:
            event = delivery.event()
        except EventDecodeError as exc:
            log.warning("undecodable message", extra={**context, "error": str(exc)})
            return Outcome.FAILED, str(exc)
        context["event_id"] = event.id
        annotate_event(event)
        attempt = 0
        held: str | None = None  # the dependency this delivery is held for, since held_since
        held_since = 0.0
        last_log = 0.0
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
                    now = time.monotonic()
                    if dependency != held:
                        # Held for the first time, or now for another dependency (Mongo failing
                        # where Stripe did): pause what needs this one.
                        if held is None:
                            held_since = now
                        else:
                            self._release(durable, held)
                        self._hold(durable, dependency)
                        held, last_log = dependency, now
                        log.warning(
                            "dependency unavailable: holding the event and pausing the "
                            "consumers that need it",
                            extra={
                                **context,
                                "dependency": dependency,
                                "error": f"{type(exc).__name__}: {exc}",
                            },
                        )
                    elif now - last_log >= self.STILL_HOLDING_LOG_SECONDS:
                        last_log = now
                        log.warning(
                            "dependency still unavailable",
                            extra={
                                **context,
                                "dependency": dependency,
                                "held_seconds": round(now - held_since),
                                "error": f"{type(exc).__name__}: {exc}",
                            },
                        )
                    attempt += 1
                    running.since = None
                    await asyncio.sleep(policy.hold_delay(attempt))
                    continue
                finally:
                    running.since = None
                return None, ""
        finally:
            if held is not None:
                self._release(durable, held)
                log.info(
                    "dependency back: resuming",
                    extra={
                        **context,
                        "dependency": held,
                        "held_seconds": round(time.monotonic() - held_since, 3),
                    },
                )

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


class Bus(Protocol):
    """Publish events and consume them with durable, at-least-once subscriptions."""

    service: str

    def subscribe(
        self, subject: Subject, handler: Handler, *, needs: frozenset[str] | None = None
    ) -> None:
        """Register a handler; consumption starts with `start()`. `needs`: the dependencies
        the handler needs (a hold on one pauses it); None, any of them."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, event: Event[Any]) -> None:
        """Publish and wait for the server's confirmation; raise BusUnavailable otherwise."""

    async def publish_raw(self, subject: str, payload: bytes, *, msg_id: str) -> None:
        """Publish bytes as they are; raise BusUnavailable when the bus is down and
        Unpublishable when the bus will never take this message."""

    async def ready(self) -> bool: ...

    async def consumer_lag(self) -> dict[str, tuple[int, int]]:
        """Per durable consumer of this service: (messages not delivered yet, delivered and
        not acked yet)."""

    async def dead_letters(self) -> list[DeadLetter]:
        """This service's dead letters."""

    async def redrive(self, seq: int) -> DeadLetter | None:
        """Send the dead letter `seq` back to the one consumer that dead-lettered it (once,
        however often this is called); None when there is no such dead letter (any more)."""
