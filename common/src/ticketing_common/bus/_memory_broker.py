"""The in-memory fake's server: the messages the streams keep, the durables, the dead letters.

`InMemoryBroker` is what several `InMemoryBus` instances (see `memory`, which says what is
modelled) share, as processes share one nats-server: the log of messages with their storage
(interest retention, byte limits with discard new, de-duplication by message id), each durable's
server-side state (its config, queue and deliveries in flight), and the DEADLETTER stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from ticketing_common.bus.contract import BusUnavailable, DeadLetter, PublishRefused, Unpublishable
from ticketing_common.bus.policy import UNLIMITED
from ticketing_common.bus.streams import (
    DEAD_LETTER_STREAM,
    DEFAULT_MAX_BYTES,
    redrive_subject,
    stream_for,
)


@dataclass
class Pending:
    seq: int
    subject: str
    payload: bytes
    stored_at: float = 0.0  # wall clock, as a stream's timestamp
    deliveries: int = 0
    taken_by: int = 0  # the bus (id) its last delivery went to
    available_at: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Consumer:
    name: str
    subject: str
    filters: set[str] = field(default_factory=set)
    ack_wait: float = 30.0
    max_deliver: int = UNLIMITED
    deliver_all: bool = True  # like deliver_policy, fixed once created
    queue: list[Pending] = field(default_factory=list)
    in_flight: dict[int, tuple[float, int]] = field(default_factory=dict)  # seq -> (deadline, nth)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    asked_at: dict[int, float] = field(default_factory=dict)  # bus (id) -> when it last asked
    consuming: int = 0  # buses pulling from it now (one created for the contract: none yet)

    def __post_init__(self) -> None:
        self.filters = self.filters or {self.subject}

    def exhausted(self, item: Pending) -> bool:
        """JetStream stops offering a message once a finite max_deliver is reached."""
        return 0 < self.max_deliver <= item.deliveries


def _dead_size(letter: DeadLetter) -> int:
    """About what a dead letter takes in DEADLETTER: its payload, its error and the headers."""
    return len(letter.payload) + len(letter.error) + 64


class InMemoryBroker:
    """The "server": the log of messages, the consumers' state, and the dead letters."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.stored_at: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.dead: list[DeadLetter] = []
        self.consumers: dict[str, Consumer] = {}
        self._seen_ids: set[str] = set()
        self._dead_seq = 0
        self.available = True
        # What the streams keep: each message's stream and size, and how many durables still
        # hold it (interest retention); bytes kept per stream, against each one's limit.
        self.max_bytes: dict[str, int] = dict(DEFAULT_MAX_BYTES)
        self.stored_bytes: Counter[str] = Counter()
        self._kept: dict[int, tuple[str, int, int]] = {}  # seq -> (stream, size, holders)

    def declare(self, max_bytes: Mapping[str, int]) -> None:
        """Set the streams' byte limits, as a bus declaring its streams does."""
        self.max_bytes.update(max_bytes)

    def kept(self, stream: str) -> int:
        """Messages stream `stream` still keeps (tests)."""
        return sum(1 for kept_in, _, _ in self._kept.values() if kept_in == stream)

    def release(self, seq: int) -> None:
        """A durable is done with message `seq`: removed once none holds it."""
        kept = self._kept.get(seq)
        if kept is None:
            return
        stream, size, holders = kept
        if holders > 1:
            self._kept[seq] = (stream, size, holders - 1)
        else:
            del self._kept[seq]
            self.stored_bytes[stream] -= size

    def _room(self, stream: str, size: int) -> None:
        used, limit = self.stored_bytes[stream], self.max_bytes.get(stream, -1)
        if 0 <= limit < used + size:
            raise PublishRefused(
                f"{stream} refused the message: maximum bytes exceeded",
                stream=stream,
                reason="stream_full",
            )

    def delete_consumer(self, name: str) -> bool:
        """Delete durable `name`; the messages only it held go."""
        consumer = self.consumers.pop(name, None)
        if consumer is None:
            return False
        for item in consumer.queue:
            self.release(item.seq)
        return True

    def consumer(
        self,
        name: str,
        subject: str,
        *,
        ack_wait: float = 30.0,
        max_deliver: int = UNLIMITED,
        deliver_all: bool = True,
        filters: set[str] | None = None,
    ) -> Consumer:
        """The durable `name`, created with this config if it does not exist yet; an existing
        one is returned as it is (the server keeps it until its owner updates it). A new one
        gets what the streams still keep (interest retention: not what nobody held)."""
        existing = self.consumers.get(name)
        if existing is None:
            existing = Consumer(
                name=name,
                subject=subject,
                filters=set(filters or ()),
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                deliver_all=deliver_all,
            )
            if deliver_all:
                for seq, (subj, payload) in enumerate(self.messages):
                    if subj in existing.filters and seq in self._kept:
                        stream, size, holders = self._kept[seq]
                        self._kept[seq] = (stream, size, holders + 1)
                        existing.queue.append(
                            Pending(
                                seq,
                                subj,
                                payload,
                                stored_at=self.stored_at[seq],
                                headers=self.headers[seq],
                            )
                        )
            self.consumers[name] = existing
        return existing

    def append(
        self, subject: str, payload: bytes, msg_id: str, headers: dict[str, str] | None = None
    ) -> None:
        if not self.available:
            raise BusUnavailable("in-memory broker is down")
        try:
            stream = stream_for(subject)
        except KeyError as exc:
            raise Unpublishable(str(exc)) from exc
        if msg_id in self._seen_ids:
            return  # JetStream's Nats-Msg-Id de-duplication
        # About what the server counts: subject, headers, payload and a record's overhead.
        size = (
            len(subject) + len(payload) + sum(len(k) + len(v) for k, v in (headers or {}).items())
        )
        size += 32
        self._room(stream, size)  # discard new: a full stream refuses, whoever is interested
        self._seen_ids.add(msg_id)
        seq = len(self.messages)
        now = time.time()
        self.messages.append((subject, payload))
        self.stored_at.append(now)
        self.headers.append(headers or {})
        holders = 0
        for consumer in self.consumers.values():
            if subject in consumer.filters:
                holders += 1
                consumer.queue.append(
                    Pending(seq, subject, payload, stored_at=now, headers=headers or {})
                )
                consumer.wakeup.set()
        if holders:  # interest retention: nobody interested, nothing kept
            self._kept[seq] = (stream, size, holders)
            self.stored_bytes[stream] += size

    def store_dead(self, letter: DeadLetter) -> DeadLetter:
        # Limits retention, discard new: a full DEADLETTER refuses (the dispatcher retries).
        self._room(DEAD_LETTER_STREAM, _dead_size(letter))
        self.stored_bytes[DEAD_LETTER_STREAM] += _dead_size(letter)
        self._dead_seq += 1
        stored = dataclasses.replace(letter, seq=self._dead_seq)
        self.dead.append(stored)
        return stored

    def redrive(self, seq: int) -> DeadLetter | None:
        """Send dead letter `seq` back to its one consumer, as the operator command does."""
        letter = next((d for d in self.dead if d.seq == seq), None)
        if letter is None:
            return None
        self.append(
            redrive_subject(letter.subject, letter.durable),
            letter.payload,
            msg_id=f"redrive:{letter.durable}:{letter.seq}",
        )
        self.dead.remove(letter)
        self.stored_bytes[DEAD_LETTER_STREAM] -= _dead_size(letter)
        return letter

    def idle(self) -> bool:
        """Nothing queued or in flight for a durable being consumed (one created for the
        contract that no bus consumes yet keeps its messages, as on the server)."""
        return all(not c.queue and not c.in_flight for c in self.consumers.values() if c.consuming)
