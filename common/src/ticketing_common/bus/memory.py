"""An in-memory bus for unit tests that behaves like JetStream where it matters.

Modelled: durable consumers that share work between subscribers of the same name, each with
its server-side config (filter subjects, ack_wait, max_deliver, deliver policy) that the bus
reconciles on start as the real one does; explicit ack, nak with delay, in-progress signals,
redelivery after `ack_wait` when a handler neither acks nor signals progress in time, a finite
server max_deliver silently ending deliveries (as JetStream does), dead letters with sequence
numbers, re-drive to one consumer, de-duplication by message id, subjects that no stream
holds being refused, and a message handed out again going to another process waiting on the
same durable before the one that had it (the server serves its waiting pull requests in turn).
Storage as the streams declare it (`streams.py`): interest retention (a message is kept only
for the durables whose filter matches it when it is stored, and removed once each has acked or
dead-lettered it; a durable created later gets only what is still kept), byte limits per
stream with discard new (a full stream refuses the publish with `PublishRefused`), every bus
creating the contract's missing durables when it starts, and the contract check.
The delivery decisions themselves are the shared `Dispatcher`'s. Several `InMemoryBus`
instances built on one `InMemoryBroker` behave like several processes on one server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Unpack

from ticketing_common.bus._core import BusCore, BusTuning
from ticketing_common.bus._memory_broker import Consumer, InMemoryBroker, Pending
from ticketing_common.bus._observe import publish_refused, published
from ticketing_common.bus.contract import DeadLetter, Delivery, Handler, PublishRefused
from ticketing_common.bus.policy import UNLIMITED
from ticketing_common.bus.streams import CONSUMERS, check_contract, durable_name, redrive_subject
from ticketing_common.events import Event, EventDecodeError, Subject, decode, encode
from ticketing_common.telemetry import tracing

__all__ = ["InMemoryBroker", "InMemoryBus"]

log = logging.getLogger("ticketing.bus")


class _MemoryDelivery(Delivery):
    """One delivery of a message by the fake server, as the dispatcher settles it."""

    def __init__(self, bus: InMemoryBus, consumer: Consumer, item: Pending, nth: int) -> None:
        super().__init__(
            payload=item.payload,
            subject=item.subject,
            delivered=nth,
            stream_seq=item.seq,
            stored_at=item.stored_at,
            durable=consumer.name,
            service=bus.service,
            headers=item.headers,
        )
        self._bus, self._consumer, self._item, self._nth = bus, consumer, item, nth

    def _current(self) -> bool:
        """Whether this delivery still owns the message: after ack_wait it went out again, and
        an ack or nak of the old delivery is void (as on the server)."""
        return self._consumer.in_flight.get(self._item.seq, (0.0, -1))[1] == self._nth

    async def progress(self) -> None:
        if self._current():
            self._consumer.in_flight[self._item.seq] = (
                time.monotonic() + self._consumer.ack_wait,
                self._nth,
            )

    async def ack(self) -> None:
        if self._current():
            del self._consumer.in_flight[self._item.seq]
            self._consumer.queue.remove(self._item)
            self._bus.broker.release(self._item.seq)

    async def nak(self, delay: float) -> None:
        if not self._current():
            return
        del self._consumer.in_flight[self._item.seq]
        if self._consumer.exhausted(self._item):
            self._consumer.queue.remove(self._item)
        else:
            self._item.available_at = time.monotonic() + delay

    async def dead(self, error: str) -> None:
        if not self._current():
            return
        self._bus.broker.store_dead(self.letter(error))
        del self._consumer.in_flight[self._item.seq]
        self._consumer.queue.remove(self._item)
        self._bus.broker.release(self._item.seq)  # terminated: no longer held


class InMemoryBus(BusCore):
    """A bus on an `InMemoryBroker`: the same handling as `JetStreamBus` (the dispatcher is
    shared), and the same promises, held to the real bus's tests."""

    ASKING_SECONDS = 0.05  # asked this recently: a process that is waiting for messages

    def __init__(
        self,
        service: str = "test",
        *,
        broker: InMemoryBroker | None = None,
        stream_max_bytes: Mapping[str, int] | None = None,
        consumers: Mapping[str, tuple[Subject, ...]] = CONSUMERS,
        contract: bool = False,
        **tuning: Unpack[BusTuning],
    ) -> None:
        """`stream_max_bytes`, `consumers`, `contract`: as JetStreamBus's (the byte limits are
        the broker's once this bus starts, given or not)."""
        # Test timings: retries 10 ms apart, and a held delivery re-run at most 0.5 s apart, so
        # a test that brings a dependency back sees the flow resume well within drain()'s
        # timeout.
        tuning.setdefault("retry_delay", 0.01)
        tuning.setdefault("max_hold_delay", 0.5)
        super().__init__(service, **tuning)
        self.broker = broker or InMemoryBroker()
        self.stream_max_bytes = stream_max_bytes
        self.consumers = consumers
        self.contract = contract
        self._consuming: list[Consumer] = []

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

    async def start(self) -> None:
        if self.contract:
            check_contract(self.service, {h[0] for h in self._handlers}, self.consumers)
        # As JetStreamBus connecting: the streams' limits, the contract's missing durables, this
        # service's stale ones gone, then its own.
        if self.stream_max_bytes is not None:
            self.broker.declare(self.stream_max_bytes)
        for service, subjects in self.consumers.items():
            for subject in subjects:
                durable = durable_name(service, subject)
                self.broker.consumer(
                    durable,
                    subject.wire,
                    ack_wait=self.ack_wait,
                    filters={subject.wire, redrive_subject(subject.wire, durable)},
                )
        if self.contract:
            wanted = set(self.consumers.get(self.service, ()))
            for subject in set(Subject) - wanted:
                durable = durable_name(self.service, subject)
                if self.broker.delete_consumer(durable):
                    log.warning(
                        "deleted a durable this service no longer consumes",
                        extra={"durable": durable},
                    )
        for subject, handler, *_ in self._handlers:
            durable = durable_name(self.service, subject)
            consumer = self.broker.consumer(
                durable, subject.wire, ack_wait=self.ack_wait, deliver_all=True
            )
            self._reconcile(consumer, subject)
            consumer.consuming += 1
            self._consuming.append(consumer)
            self._tasks.append(asyncio.create_task(self._consume(consumer, handler)))

    def _reconcile(self, consumer: Consumer, subject: Subject) -> None:
        """Bring an existing durable to this bus's settings, as JetStreamBus does on the server."""
        if not consumer.deliver_all:
            log.error(
                "consumer config cannot be updated in place; running with the server's",
                extra={"durable": consumer.name, "fields": ["deliver_policy"]},
            )
            return
        consumer.filters = {subject.wire, redrive_subject(subject.wire, consumer.name)}
        consumer.ack_wait = self.ack_wait
        consumer.max_deliver = UNLIMITED

    async def close(self) -> None:
        await self._stop_tasks()
        for consumer in self.broker.consumers.values():
            consumer.asked_at.pop(id(self), None)
        for consumer in self._consuming:
            consumer.consuming -= 1
        self._consuming.clear()

    async def publish(self, event: Event[Any]) -> None:
        await self.publish_raw(event.subject.wire, encode(event), msg_id=event.id)

    async def publish_raw(self, subject: str, payload: bytes, *, msg_id: str) -> None:
        try:
            self.broker.append(subject, payload, msg_id, tracing.headers())
        except PublishRefused as refused:
            publish_refused(self.service, refused.stream, refused.reason)
            raise
        published(self.service, subject)

    async def consumer_lag(self) -> dict[str, tuple[int, int]]:
        lag: dict[str, tuple[int, int]] = {}
        for subject, _ in self._handlers:
            consumer = self.broker.consumers.get(durable_name(self.service, subject))
            if consumer is not None:
                flying = len(consumer.in_flight)
                lag[consumer.name] = (len(consumer.queue) - flying, flying)
        return lag

    async def ready(self) -> bool:
        return self.broker.available

    async def dead_letters(self) -> list[DeadLetter]:
        return [d for d in self.broker.dead if d.service == self.service]

    async def redrive(self, seq: int) -> DeadLetter | None:
        return self.broker.redrive(seq)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every consumer has nothing queued or in flight (tests only)."""
        deadline = time.monotonic() + timeout
        while not self.broker.idle():
            if time.monotonic() > deadline:
                raise TimeoutError("in-memory bus did not drain")
            await asyncio.sleep(0.001)

    def _take(self, consumer: Consumer) -> Pending | None:
        now = time.monotonic()
        me = id(self)
        consumer.asked_at[me] = now
        # Another process asking now (its loop asks every few ms while it has room) is served
        # a message this one had before: without that, two loops polling at the same period
        # kept their phase and a hung process could win its own redelivery round after round.
        others_asking = any(
            bus != me and now - at < self.ASKING_SECONDS for bus, at in consumer.asked_at.items()
        )
        # A delivery whose ack deadline passed goes back to the queue: that is ack_wait.
        for seq, (deadline, _) in list(consumer.in_flight.items()):
            if deadline <= now:
                del consumer.in_flight[seq]
                item = next((p for p in consumer.queue if p.seq == seq), None)
                if item is not None and consumer.exhausted(item):
                    consumer.queue.remove(item)
        ready = [
            p
            for p in consumer.queue
            if p.available_at <= now
            and p.seq not in consumer.in_flight
            and not (others_asking and p.taken_by == me)
        ]
        if not ready:
            return None
        item = min(ready, key=lambda p: p.seq)
        item.deliveries += 1
        item.taken_by = me
        consumer.in_flight[item.seq] = (now + consumer.ack_wait, item.deliveries)
        return item

    async def _consume(self, consumer: Consumer, handler: Handler) -> None:
        lanes = self._new_lanes()
        while True:
            await self.dispatcher.wait_open(consumer.name)
            await lanes.room()
            item = self._take(consumer)
            if item is None:
                consumer.wakeup.clear()
                try:
                    await asyncio.wait_for(consumer.wakeup.wait(), timeout=0.005)
                except TimeoutError:
                    # Python 3.11's wait_for turns a cancellation that lands as the timeout
                    # fires into a TimeoutError: without this, a stopping bus would wait for
                    # this loop forever.
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise asyncio.CancelledError from None
                continue
            self._submit(
                lanes,
                _MemoryDelivery(self, consumer, item, item.deliveries),
                handler,
                ack_wait=consumer.ack_wait,
                server_max_deliver=consumer.max_deliver,
            )
