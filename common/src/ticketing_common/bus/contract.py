"""What a handler and a publisher deal with: the bus's promises, its errors, and what a delivery is.

A handler is `async def handle(event) -> None`:
- returns: the event is done, ack it;
- raises `RetryLater`: not yet (an earlier event is still on its way): offered again with a
  capped exponential backoff for as long as it takes, and dead-lettered only once it has waited
  longer than the retry horizon (`NATS_RETRY_HORIZON_SECONDS`; see `policy`);
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

A publisher waits for the server's confirmation: `BusUnavailable` when there is none (the outbox
keeps the event and publishes it later), `Unpublishable` when the bus will never take it.

`Bus` is what a service's code and its runtime use of a bus; `OperatorBus` adds what tests, tools
and the operator command use besides. Both implementations (`JetStreamBus`, `InMemoryBus`) are
`OperatorBus`es.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from ticketing_common.bus.streams import original_subject
from ticketing_common.events import Event, EventDecodeError, Subject, decode

__all__ = [
    "EVERYONE_NEEDS",
    "Bus",
    "BusUnavailable",
    "DeadLetter",
    "Delivery",
    "Dependency",
    "DependencyUnavailable",
    "Handler",
    "MessageId",
    "OperatorBus",
    "PublishRefused",
    "RetryLater",
    "Unpublishable",
    "dependency_of",
    "is_infrastructure_failure",
]

Handler = Callable[[Event[Any]], Awaitable[None]]
# A message of a stream: (its sequence, when the stream stored it); see `Delivery.message`.
MessageId = tuple[int, float]


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
    """A message its consumer gave up on, as the DEADLETTER stream keeps it."""

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


class Bus(Protocol):
    """Publish events and consume them with durable, at-least-once subscriptions: what a
    service's code and its runtime (the app's lifespan, the outbox relay, readiness and the
    metrics scrape) use of a bus."""

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

    async def ready(self) -> bool: ...

    async def consumer_lag(self) -> dict[str, tuple[int, int]]:
        """Per durable consumer of this service: (messages not delivered yet, delivered and
        not acked yet)."""


class OperatorBus(Bus, Protocol):
    """A bus as tests, tools and operators use it besides: bytes published as they are, and
    the service's dead letters read and re-driven."""

    async def publish_raw(self, subject: str, payload: bytes, *, msg_id: str) -> None:
        """Publish bytes as they are; raise BusUnavailable when the bus is down and
        Unpublishable when the bus will never take this message."""

    async def dead_letters(self) -> list[DeadLetter]:
        """This service's dead letters."""

    async def redrive(self, seq: int) -> DeadLetter | None:
        """Send the dead letter `seq` back to the one consumer that dead-lettered it (once,
        however often this is called); None when there is no such dead letter (any more)."""
