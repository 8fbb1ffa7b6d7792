"""The JetStream streams, declared once for every service.

File storage (flaw 6: the old bus kept messages in memory), limits retention so a new consumer
or a replayed one can read history, and a de-duplication window long enough to cover the outbox
relay's retries of an event whose first publish outcome was unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticketing_common.events import Subject

DEAD_LETTER_STREAM = "DEADLETTER"
DEAD_LETTER_PREFIX = "deadletter"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_seconds: int = 30 * 24 * 3600
    duplicate_window_seconds: int = 10 * 60


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("USERS", ("user.>",)),
    StreamSpec("TICKETS", ("ticket.>",)),
    StreamSpec("ORDERS", ("order.>",)),
    StreamSpec("EXPIRATION", ("expiration.>",)),
    StreamSpec("PAYMENTS", ("payment.>",)),
    StreamSpec(DEAD_LETTER_STREAM, (f"{DEAD_LETTER_PREFIX}.>",), max_age_seconds=90 * 24 * 3600),
)


def stream_for(subject: str) -> str:
    head = subject.split(".", 1)[0]
    for spec in STREAMS:
        if any(s.split(".", 1)[0] == head for s in spec.subjects):
            return spec.name
    raise KeyError(f"no stream holds subject {subject!r}")


# Every subject of the contract must live in a stream; checked by the tests.
ALL_SUBJECTS = tuple(s.wire for s in Subject)
