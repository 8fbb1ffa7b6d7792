"""An in-memory bus for unit tests that behaves like JetStream where it matters.

Modelled: durable consumers that share work between subscribers of the same name, explicit
ack, nak with delay, redelivery after `ack_wait` when a handler neither acks nor naks in time,
`max_deliver` with dead-lettering, and de-duplication by event id. Several `InMemoryBus`
instances built on one `InMemoryBroker` behave like several processes on one server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ticketing_common.bus.base import (
    BusUnavailable,
    DeadLetter,
    Handler,
    Verdict,
    decide,
    durable_name,
)
from ticketing_common.events import Event, EventDecodeError, Subject, decode, encode

log = logging.getLogger("ticketing.bus")


@dataclass
class _Pending:
    seq: int
    subject: str
    payload: bytes
    deliveries: int = 0
    available_at: float = 0.0


@dataclass
class _Consumer:
    name: str
    subject: str
    queue: list[_Pending] = field(default_factory=list)
    in_flight: dict[int, tuple[float, int]] = field(default_factory=dict)  # seq -> (deadline, nth)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


class InMemoryBroker:
    """The "server": the log of messages, the consumers' state, and the dead letters."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.dead: list[DeadLetter] = []
        self.consumers: dict[str, _Consumer] = {}
        self._seen_ids: set[str] = set()
        self.available = True

    def consumer(self, name: str, subject: str) -> _Consumer:
        existing = self.consumers.get(name)
        if existing is None:
            existing = _Consumer(name=name, subject=subject)
            # A new durable consumer starts at the beginning of the stream (deliver all).
            for seq, (subj, payload) in enumerate(self.messages):
                if subj == subject:
                    existing.queue.append(_Pending(seq=seq, subject=subj, payload=payload))
            self.consumers[name] = existing
        return existing

    def append(self, subject: str, payload: bytes, msg_id: str) -> None:
        if not self.available:
            raise BusUnavailable("in-memory broker is down")
        if msg_id in self._seen_ids:
            return  # JetStream's Nats-Msg-Id de-duplication
        self._seen_ids.add(msg_id)
        seq = len(self.messages)
        self.messages.append((subject, payload))
        for consumer in self.consumers.values():
            if consumer.subject == subject:
                consumer.queue.append(_Pending(seq=seq, subject=subject, payload=payload))
                consumer.wakeup.set()

    def idle(self) -> bool:
        return all(not c.queue and not c.in_flight for c in self.consumers.values())


class InMemoryBus:
    def __init__(
        self,
        service: str = "test",
        *,
        broker: InMemoryBroker | None = None,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        retry_delay: float = 0.01,
    ) -> None:
        self.service = service
        self.broker = broker or InMemoryBroker()
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.retry_delay = retry_delay
        self._handlers: list[tuple[Subject, Handler]] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def published(self) -> list[Event[Any]]:
        """Every event on the broker, decoded (for assertions in tests)."""
        out: list[Event[Any]] = []
        for _, payload in self.broker.messages:
            with contextlib.suppress(EventDecodeError):
                out.append(decode(payload))
        return out

    def published_on(self, subject: Subject) -> list[Event[Any]]:
        return [e for e in self.published if e.subject == subject]

    def subscribe(self, subject: Subject, handler: Handler) -> None:
        self._handlers.append((subject, handler))

    async def start(self) -> None:
        for subject, handler in self._handlers:
            consumer = self.broker.consumer(durable_name(self.service, subject), subject.wire)
            self._tasks.append(asyncio.create_task(self._consume(consumer, handler)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def publish(self, event: Event[Any]) -> None:
        self.broker.append(event.subject.wire, encode(event), event.id)

    async def publish_raw(self, subject: str, payload: bytes, *, msg_id: str) -> None:
        self.broker.append(subject, payload, msg_id)

    async def ready(self) -> bool:
        return self.broker.available

    async def dead_letters(self) -> list[DeadLetter]:
        return list(self.broker.dead)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every consumer has nothing queued or in flight (tests only)."""
        deadline = time.monotonic() + timeout
        while not self.broker.idle():
            if time.monotonic() > deadline:
                raise TimeoutError("in-memory bus did not drain")
            await asyncio.sleep(0.001)

    def _take(self, consumer: _Consumer) -> _Pending | None:
        now = time.monotonic()
        # A delivery whose ack deadline passed goes back to the queue: that is ack_wait.
        for seq, (deadline, _) in list(consumer.in_flight.items()):
            if deadline <= now:
                del consumer.in_flight[seq]
        ready = [
            p for p in consumer.queue if p.available_at <= now and p.seq not in consumer.in_flight
        ]
        if not ready:
            return None
        item = min(ready, key=lambda p: p.seq)
        item.deliveries += 1
        consumer.in_flight[item.seq] = (now + self.ack_wait, item.deliveries)
        return item

    async def _consume(self, consumer: _Consumer, handler: Handler) -> None:
        while True:
            item = self._take(consumer)
            if item is None:
                consumer.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(consumer.wakeup.wait(), timeout=0.005)
                continue
            nth = item.deliveries
            decision = await decide(
                handler,
                item.payload,
                delivered=nth,
                max_deliver=self.max_deliver,
                retry_delay=self.retry_delay,
                context={"service": self.service, "durable": consumer.name},
            )
            if consumer.in_flight.get(item.seq, (0.0, -1))[1] != nth:
                # Too late: ack_wait passed and the message went out again; this ack is void.
                continue
            del consumer.in_flight[item.seq]
            if decision.verdict is Verdict.NAK:
                item.available_at = time.monotonic() + decision.delay
                continue
            consumer.queue.remove(item)
            if decision.verdict is Verdict.DEAD:
                self.broker.dead.append(
                    DeadLetter(
                        subject=item.subject,
                        durable=consumer.name,
                        payload=item.payload,
                        deliveries=item.deliveries,
                        error=decision.error,
                    )
                )
