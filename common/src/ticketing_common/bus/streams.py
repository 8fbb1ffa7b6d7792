"""The JetStream streams, declared once for every service.

File storage (flaw 6: the old bus kept messages in memory), limits retention so a new consumer
or a replayed one can read history, and a de-duplication window long enough to cover the outbox
relay's retries of an event whose first publish outcome was unknown.

Each event stream also holds the re-drive subjects of its events
(`redrive.<wire subject>.<durable>`): a dead letter sent back by the operator command goes to
the one durable consumer that dead-lettered it (each durable filters on its event subject and on
its own re-drive subject), never to the other services that consume the same subject, and it
lands in the same stream so it is kept and ordered like any event.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticketing_common.events import Subject

DEAD_LETTER_STREAM = "DEADLETTER"
DEAD_LETTER_PREFIX = "deadletter"
REDRIVE_PREFIX = "redrive"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_seconds: int = 30 * 24 * 3600
    duplicate_window_seconds: int = 10 * 60


def _event_stream(name: str, head: str) -> StreamSpec:
    return StreamSpec(name, (f"{head}.>", f"{REDRIVE_PREFIX}.{head}.>"))


STREAMS: tuple[StreamSpec, ...] = (
    _event_stream("USERS", "user"),
    _event_stream("TICKETS", "ticket"),
    _event_stream("ORDERS", "order"),
    _event_stream("EXPIRATION", "expiration"),
    _event_stream("PAYMENTS", "payment"),
    StreamSpec(DEAD_LETTER_STREAM, (f"{DEAD_LETTER_PREFIX}.>",), max_age_seconds=90 * 24 * 3600),
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
