"""What both bus implementations share: the handler contract and the delivery decision.

A handler is `async def handle(event) -> None`:
- returns: the event is done, ack it;
- raises `RetryLater`: not yet (an earlier event is still on its way), nak with a delay;
- raises anything else: a failure, nak with a growing delay.
Either way a message is delivered at most `max_deliver` times; after the last failed delivery it
is dead-lettered (logged and kept, with its error) and terminated, so a poison message can never
loop forever (flaw 3 of the app this replaces).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from ticketing_common.events import Event, EventDecodeError, Subject, decode

log = logging.getLogger("ticketing.bus")

Handler = Callable[[Event[Any]], Awaitable[None]]

MAX_RETRY_DELAY = 30.0


class RetryLater(Exception):
    """Raised by a handler that cannot apply an event yet; the bus offers it again later."""


class BusUnavailable(Exception):
    """Publishing failed: not connected, or the server did not confirm in time."""


class DependencyUnavailable(Exception):
    """A handler could not run because something it needs is down (its own database, the
    broker, Stripe answering 5xx or not at all): not the event's fault, so it must never use
    up the event's deliveries. Raise it (or let a pymongo connection error through); the bus
    holds the message and retries once the dependency is back."""


def is_infrastructure_failure(exc: BaseException) -> bool:
    """Whether a handler failed because a dependency is unreachable, not because of the event."""
    from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError

    return isinstance(
        exc,
        (
            DependencyUnavailable,
            BusUnavailable,
            ConnectionFailure,  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError
            ExecutionTimeout,
            WTimeoutError,
            TimeoutError,
        ),
    )


@dataclass(frozen=True)
class DeadLetter:
    subject: str
    durable: str
    payload: bytes
    deliveries: int
    error: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Verdict(Enum):
    ACK = "ack"
    NAK = "nak"
    DEAD = "dead"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0
    error: str = ""


def durable_name(service: str, subject: Subject) -> str:
    """One durable consumer per service and subject: `orders-ticket-created`."""
    return f"{service}-{subject.wire.replace('.', '-')}"


async def decide(
    handler: Handler,
    payload: bytes,
    *,
    delivered: int,
    max_deliver: int,
    retry_delay: float,
    context: dict[str, Any],
) -> Decision:
    """Run the handler on one delivery and say what to do with the message."""
    try:
        event = decode(payload)
    except EventDecodeError as exc:
        error = str(exc)
    else:
        context = {**context, "event_id": event.id}
        try:
            await handler(event)
        except RetryLater as exc:
            error = f"retry later: {exc}"
            log.info(
                "event deferred", extra={**context, "delivered": delivered, "reason": str(exc)}
            )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "handler failed",
                exc_info=exc,
                extra={**context, "delivered": delivered},
            )
        else:
            return Decision(Verdict.ACK)
    if delivered >= max_deliver:
        log.error(
            "event dead-lettered",
            extra={**context, "delivered": delivered, "error": error},
        )
        return Decision(Verdict.DEAD, error=error)
    # Exponential backoff, capped: an earlier event held up by a slow or restarting consumer gets
    # minutes to land before its successor gives up, yet the number of tries stays bounded.
    delay = min(retry_delay * 2 ** (delivered - 1), MAX_RETRY_DELAY)
    return Decision(Verdict.NAK, delay=delay, error=error)


class Bus(Protocol):
    """Publish events and consume them with durable, at-least-once subscriptions."""

    service: str

    def subscribe(self, subject: Subject, handler: Handler) -> None:
        """Register a handler; consumption starts with `start()`."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, event: Event[Any]) -> None:
        """Publish and wait for the server's confirmation; raise BusUnavailable otherwise."""

    async def publish_raw(self, subject: str, payload: bytes, *, msg_id: str) -> None: ...

    async def ready(self) -> bool: ...

    async def dead_letters(self) -> list[DeadLetter]: ...
