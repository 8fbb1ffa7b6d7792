"""The JetStream streams and the contract's consumers, declared once for every service.

File storage (flaw 6: the old bus kept messages in memory), and a de-duplication window long
enough to cover the outbox relay's retries of an event whose first publish outcome was unknown.

Bounded by bytes, never by losing what is not consumed (issue 21: streams bounded only by age
filled the shared store, and then every publish on every stream was refused):
- The event streams (USERS, TICKETS, ORDERS, EXPIRATION, PAYMENTS) have interest retention: a
  message is removed once every durable consumer whose filter matches it has acknowledged (or
  dead-lettered) it, so consumed events no longer pile up for 30 days; `max_age` stays as a
  backstop. Each has its own `max_bytes` (`NATS_MAX_BYTES_<STREAM>`), all of them together
  within the store the deployment gives JetStream (`max_file_store`, `STORE_BYTES`), with room
  left. A stream is then full only when one of its consumers is down or behind by its
  `max_bytes`: an outage, not a steady state.
- Discard new: a full stream refuses the publish (JetStream 10077 "maximum bytes exceeded", or
  10023 "insufficient resources" for the store), the bus raises BusUnavailable and the outbox
  keeps the event and retries it until the consumer catches up. Discard old would silently
  delete events not consumed yet (a payment, an order's cancellation: money lost). A refusal is
  counted (`ticketing_bus_publish_refused_total`) and alerted on; it stops only that stream.
- DEADLETTER: limits retention (nothing consumes it; the operator command reads it by
  sequence), kept 90 days, discard new with its own `max_bytes`: a dead letter that cannot be
  stored is nak'ed and dead-lettered again later (the dispatcher), never dropped.

Interest retention drops a message that no consumer is interested in when it is stored, so every
durable of the contract (`CONSUMERS`: which service consumes which subjects) must exist before
anything is published: every bus creates the ones missing when it connects, before it publishes
(create only, with the config their owner would give them; the owner reconciles the rest).

Each event stream also holds the re-drive subjects of its events
(`redrive.<wire subject>.<durable>`): a dead letter sent back by the operator command goes to
the one durable consumer that dead-lettered it (each durable filters on its event subject and on
its own re-drive subject), never to the other services that consume the same subject, and it
lands in the same stream so it is kept and ordered like any event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from ticketing_common.events import Subject

__all__ = [
    "ALL_SUBJECTS",
    "CONSUMERS",
    "DEAD_LETTER_PREFIX",
    "DEAD_LETTER_STREAM",
    "DEFAULT_MAX_BYTES",
    "REDRIVE_PREFIX",
    "STORE_BYTES",
    "STREAMS",
    "ContractMismatch",
    "Retention",
    "StreamSpec",
    "check_contract",
    "durable_name",
    "original_subject",
    "redrive_subject",
    "stream_for",
    "stream_specs",
]

DEAD_LETTER_STREAM = "DEADLETTER"
DEAD_LETTER_PREFIX = "deadletter"
REDRIVE_PREFIX = "redrive"


MiB = 1024 * 1024
GiB = 1024 * MiB
# The JetStream store the deployment gives the server (infra/k8s/base/nats.conf and the local
# stack's nats-server: `max_file_store`). The server reserves each stream's max_bytes in it and
# refuses to create a stream that would not fit (10047), so the defaults below must.
STORE_BYTES = 4 * GiB
# Each stream's default max_bytes: 3 GiB together, a quarter of the store left for the server's
# own files and a stream added later. ORDERS carries the most (three consumers, every order
# event); USERS has no consumer, so nothing stays in it.
DEFAULT_MAX_BYTES: Mapping[str, int] = {
    "USERS": 128 * MiB,
    "TICKETS": 512 * MiB,
    "ORDERS": 1 * GiB,
    "EXPIRATION": 256 * MiB,
    "PAYMENTS": 512 * MiB,
    DEAD_LETTER_STREAM: 640 * MiB,
}

Retention = Literal["limits", "interest"]


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_bytes: int
    retention: Retention = "interest"
    max_age_seconds: int = 30 * 24 * 3600
    duplicate_window_seconds: int = 10 * 60


def _event_stream(name: str, head: str) -> StreamSpec:
    return StreamSpec(name, (f"{head}.>", f"{REDRIVE_PREFIX}.{head}.>"), DEFAULT_MAX_BYTES[name])


STREAMS: tuple[StreamSpec, ...] = (
    _event_stream("USERS", "user"),
    _event_stream("TICKETS", "ticket"),
    _event_stream("ORDERS", "order"),
    _event_stream("EXPIRATION", "expiration"),
    _event_stream("PAYMENTS", "payment"),
    StreamSpec(
        DEAD_LETTER_STREAM,
        (f"{DEAD_LETTER_PREFIX}.>",),
        DEFAULT_MAX_BYTES[DEAD_LETTER_STREAM],
        retention="limits",
        max_age_seconds=90 * 24 * 3600,
    ),
)


def stream_specs(max_bytes: Mapping[str, int] | None = None) -> tuple[StreamSpec, ...]:
    """The declared streams, with the byte limits of the settings (by stream name) where given."""
    limits = max_bytes or {}
    return tuple(replace(s, max_bytes=limits.get(s.name, s.max_bytes)) for s in STREAMS)


# Who consumes what: one durable per service and subject (`durable_name`). Every bus creates the
# missing ones before it publishes (interest retention keeps a message only for the consumers
# that exist when it is stored), and a service's bus refuses to start if what it subscribes to
# is not its entry here. A service that stops consuming a subject deletes its old durable, which
# would otherwise keep every such message until the stream is full.
CONSUMERS: Mapping[str, tuple[Subject, ...]] = {
    "tickets": (Subject.ORDER_CREATED, Subject.ORDER_CANCELLED),
    "orders": (
        Subject.TICKET_CREATED,
        Subject.TICKET_UPDATED,
        Subject.PAYMENT_CREATED,
        Subject.PAYMENT_WINDOW_CLOSED,
    ),
    "expiration": (Subject.ORDER_CREATED, Subject.ORDER_CANCELLED),
    "payments": (
        Subject.ORDER_CREATED,
        Subject.ORDER_CANCELLED,
        Subject.ORDER_COMPLETED,
        Subject.EXPIRATION_COMPLETE,
    ),
}


class ContractMismatch(Exception):
    """A service subscribes to other subjects than its entry in `CONSUMERS`."""


def check_contract(
    service: str, subscribed: set[Subject], consumers: Mapping[str, tuple[Subject, ...]]
) -> None:
    """Raise ContractMismatch if `service`'s subscriptions differ from its registry entry: an
    unregistered one would lose what is published before it first connects, and a registered
    one it does not consume would keep its messages until the stream is full."""
    registered = set(consumers.get(service, ()))
    if subscribed == registered:
        return
    extra = sorted(s.value for s in subscribed - registered)
    missing = sorted(s.value for s in registered - subscribed)
    raise ContractMismatch(
        f"{service} subscribes to {sorted(s.value for s in subscribed)}, but the consumers "
        f"registry (ticketing_common.bus.streams.CONSUMERS) says "
        f"{sorted(s.value for s in registered)}: not registered {extra}, not subscribed {missing}"
    )


def stream_for(subject: str) -> str:
    """The stream that stores `subject` (an event subject, a re-drive or a dead-letter subject);
    KeyError when none does (such a message could never be published)."""
    for spec in STREAMS:
        for pattern in spec.subjects:
            prefix = pattern.removesuffix(">")
            if subject.startswith(prefix) and len(subject) > len(prefix):
                return spec.name
    raise KeyError(f"no stream holds subject {subject!r}")


def durable_name(service: str, subject: Subject) -> str:
    """One durable consumer per service and subject: `orders-ticket-created`."""
    return f"{service}-{subject.wire.replace('.', '-')}"


def redrive_subject(subject: str, durable: str) -> str:
    """Where a dead letter of `durable` (first published on `subject`) is sent back to."""
    return f"{REDRIVE_PREFIX}.{subject}.{durable}"


def original_subject(subject: str, durable: str) -> str:
    """The event subject of a delivery, whether it came first-hand or re-driven."""
    prefix, suffix = f"{REDRIVE_PREFIX}.", f".{durable}"
    if subject.startswith(prefix) and subject.endswith(suffix):
        return subject[len(prefix) : -len(suffix)]
    return subject


# Every subject of the contract must live in a stream; checked by the tests.
ALL_SUBJECTS = tuple(s.wire for s in Subject)
