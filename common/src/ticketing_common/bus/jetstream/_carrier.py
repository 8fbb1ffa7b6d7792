"""The bus on NATS JetStream (nats-py): the connection, publishing, and consuming.

One connection per process, reconnecting forever on its own; streams and durables declared on
connecting and again after every reconnect (`_consumers`); one durable pull consumer per service
and subject with explicit ack and `ack_wait`, fed by its standing pull (`_pull`). Pull consumers
share work: two processes of one service each get a part of the messages, never the same one
twice unless it was not acked (nor signalled in progress) in time. What is done with each
delivery is the shared dispatcher's (`_dispatcher`).

A service running as itself (`contract=True`) first checks that it subscribes to exactly its
entry in `streams.CONSUMERS` and deletes its own durables that the entry no longer names. A
publish the server refuses for lack of room raises `PublishRefused` (a BusUnavailable: the
outbox keeps the event) and is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, Unpack

import nats
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ticketing_common.bus._core import BusCore, BusTuning
from ticketing_common.bus._lanes import Lanes
from ticketing_common.bus._observe import publish_refused, published
from ticketing_common.bus.contract import (
    BusUnavailable,
    DeadLetter,
    Delivery,
    Handler,
    Unpublishable,
)
from ticketing_common.bus.jetstream._consumers import (
    ServerConsumer,
    declare_streams,
    drop_stale_durables,
    ensure_consumer,
)
from ticketing_common.bus.jetstream._dead_letters import (
    read_dead_letters,
    redrive_dead_letter,
    store_dead_letter,
)
from ticketing_common.bus.jetstream._errors import NATS_ERRORS, refusal
from ticketing_common.bus.jetstream._pull import PULL_HEARTBEAT, StandingPull
from ticketing_common.bus.streams import (
    CONSUMERS,
    DEAD_LETTER_STREAM,
    check_contract,
    durable_name,
    stream_for,
    stream_specs,
)
from ticketing_common.events import Event, Subject, encode
from ticketing_common.telemetry import tracing

log = logging.getLogger("ticketing.bus")


class _JsDelivery(Delivery):
    """One JetStream delivery, as the dispatcher settles it."""

    def __init__(self, bus: JetStreamBus, msg: Msg, durable: str) -> None:
        meta = msg.metadata
        super().__init__(
            payload=msg.data,
            subject=msg.subject,
            delivered=meta.num_delivered or 1,
            stream_seq=meta.sequence.stream if meta.sequence else 0,
            # The ack subject carries the time the stream stored the message.
            stored_at=meta.timestamp.timestamp(),
            durable=durable,
            service=bus.service,
            headers=msg.headers,
        )
        self._bus, self._msg = bus, msg

    async def progress(self) -> None:
        await self._msg.in_progress()

    async def ack(self) -> None:
        await self._settle(self._msg.ack())

    async def nak(self, delay: float) -> None:
        await self._settle(self._msg.nak(delay=delay))

    async def _settle(self, op: Awaitable[None]) -> None:
        try:
            await op
        except NATS_ERRORS as exc:
            # Lost: JetStream redelivers after ack_wait and the handler, being idempotent, does
            # nothing the second time (or the bus decides again).
            log.warning("ack failed", extra={"durable": self.durable, "error": repr(exc)})

    async def dead(self, error: str) -> None:
        js = self._bus._js
        if js is None:
            raise BusUnavailable("not connected to NATS")
        try:
            await store_dead_letter(js, self.letter(error))
        except nats.js.errors.APIError as exc:
            # DEADLETTER full: raised, so the dispatcher naks it and dead-letters it later.
            refused = refusal(exc, DEAD_LETTER_STREAM)
            if refused is not None:
                publish_refused(self._bus.service, refused.stream, refused.reason)
                raise refused from exc
            raise
        await self._settle(self._msg.term())


class JetStreamBus(BusCore):
    """The bus of a service's process on a NATS server or cluster (see the module)."""

    # How often a stale durable still in use (see `_drop_stale_durables`) is looked at again.
    STALE_RECHECK_SECONDS = 60.0

    def __init__(
        self,
        url: str,
        service: str,
        *,
        publish_timeout: float = 2.0,
        stream_replicas: int = 1,
        pull_heartbeat: float = PULL_HEARTBEAT,
        stream_max_bytes: Mapping[str, int] | None = None,
        consumers: Mapping[str, tuple[Subject, ...]] = CONSUMERS,
        contract: bool = False,
        **tuning: Unpack[BusTuning],
    ) -> None:
        """`stream_max_bytes`: each stream's byte limit, by name (the settings'); `consumers`:
        the durables of the contract, created when missing; `contract`: this bus is the
        service itself (not a test's or a tool's), so it must subscribe to exactly its entry in
        `consumers` and deletes its own durables that the entry no longer names."""
        super().__init__(service, **tuning)
        self.url = url
        self.streams = stream_specs(stream_max_bytes)
        self.consumers = consumers
        self.contract = contract
        self.publish_timeout = publish_timeout
        self.pull_heartbeat = pull_heartbeat
        self.stream_replicas = stream_replicas
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connected = asyncio.Event()
        # Set while this connection's streams and durables are known to be declared: cleared on
        # a disconnect, set again once the reconnect's declare is done (see `publish_raw`).
        self._declared = asyncio.Event()
        self._rechecking = False
        self._closing = False
        self.server_consumers: dict[str, ServerConsumer] = {}
        # One per consumer: set when its standing pull should be looked at again.
        self._wakes: list[asyncio.Event] = []

    async def start(self) -> None:
        """Connect in the background: a service must serve HTTP even while NATS is down.
        Raises ContractMismatch first if the service's subscriptions are not its entry in the
        consumers registry (with `contract`)."""
        if self.contract:
            check_contract(self.service, {h[0] for h in self._handlers}, self.consumers)
        self._tasks.append(asyncio.create_task(self._connect_forever(), name="nats-connect"))

    async def _declare(self, js: JetStreamContext) -> None:
        """The streams and the contract's durables, then this bus's own durables: all exist
        before this bus publishes anything (interest retention keeps a message only for the
        consumers that exist when it is stored)."""
        await declare_streams(
            js,
            replicas=self.stream_replicas,
            specs=self.streams,
            consumers=self.consumers,
            ack_wait=self.ack_wait,
        )
        if self.contract:
            await self._drop_stale_durables(js)
        for subject, *_ in self._handlers:
            durable = durable_name(self.service, subject)
            self.server_consumers[durable] = await self._ensure_consumer(js, subject)

    async def _ensure_consumer(self, js: JetStreamContext, subject: Subject) -> ServerConsumer:
        return await ensure_consumer(js, self.service, subject, ack_wait=self.ack_wait)

    async def _drop_stale_durables(self, js: JetStreamContext) -> None:
        """Delete this service's durables that its registry entry no longer names; one still
        in use (an older version's pods pulling from it) is looked at again every
        `STALE_RECHECK_SECONDS` until it is idle, then deleted."""
        left = await drop_stale_durables(js, self.service, self.consumers)
        if left and not self._rechecking:
            self._rechecking = True
            task = asyncio.create_task(self._recheck_stale(), name="nats-stale-durables")
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)

    async def _recheck_stale(self) -> None:
        await asyncio.sleep(self.STALE_RECHECK_SECONDS)
        # Cleared before the look, which schedules the next one if a durable is still in use.
        self._rechecking = False
        if self._js is not None:
            with contextlib.suppress(*NATS_ERRORS):
                await self._drop_stale_durables(self._js)

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def _connect_forever(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                nc = await nats.connect(
                    self.url,
                    name=self.service,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # never give up: reconnect without a restart
                    reconnect_time_wait=0.5,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
                js = nc.jetstream(timeout=self.publish_timeout)
                await self._declare(js)
            except NATS_ERRORS as exc:
                log.warning("nats not reachable, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
                with contextlib.suppress(Exception):
                    await nc.close()
                continue
            self._nc, self._js = nc, js
            self._connected.set()
            self._declared.set()
            # The host only: a URL may carry credentials (nats://user:pass@host).
            server = nc.connected_url
            log.info(
                "nats connected",
                extra={"server": f"{server.hostname}:{server.port}" if server else ""},
            )
            for subject, handler in self._handlers:
                self._tasks.append(
                    asyncio.create_task(self._consume(subject, handler), name=f"consume-{subject}")
                )
            return

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats error", extra={"error": repr(exc)})

    async def _on_disconnected(self) -> None:
        log.warning("nats disconnected")
        self._declared.clear()

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected")
        for wake in self._wakes:
            wake.set()  # each consumer asks again: its standing pulls went with the connection
        self._declared.clear()
        task = asyncio.create_task(self._redeclare(), name="nats-redeclare")
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def _redeclare(self) -> None:
        """Declare the streams and durables again after a reconnect, until it succeeds.

        The server may have lost its store (a new volume): until its streams and every
        registered durable exist again, a message published there would be stored with no
        interest, acknowledged, and dropped. So nothing is published until then (`publish_raw`
        raises BusUnavailable and the outbox keeps the event), and a declare that fails (the
        cluster still electing its leader) is tried again rather than given up.
        """
        delay = 0.2
        while not self._closing and self._js is not None:
            try:
                await self._declare(self._js)
            except NATS_ERRORS as exc:
                log.warning(
                    "declaring streams after a reconnect failed", extra={"error": repr(exc)}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
                continue
            self._declared.set()
            return

    async def close(self) -> None:
        self._closing = True
        await self._stop_tasks()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def publish(self, event: Event[Any]) -> None:
        await self.publish_raw(event.subject.wire, encode(event), msg_id=event.id)

    async def publish_raw(self, subject: str, payload: bytes, *, msg_id: str) -> None:
        try:
            stream_for(subject)
        except KeyError as exc:
            raise Unpublishable(str(exc)) from exc
        nc, js = self._nc, self._js
        if nc is None or js is None or not nc.is_connected:
            # Do not let nats-py buffer it while reconnecting: the outbox keeps it safer.
            raise BusUnavailable("not connected to NATS")
        if not self._declared.is_set():
            raise BusUnavailable("reconnected to NATS, declaring its streams and durables again")
        if len(payload) > nc.max_payload:
            raise Unpublishable(f"{len(payload)} bytes, more than the server's {nc.max_payload}")
        try:
            await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id, **tracing.headers()})
        except nats.js.errors.APIError as exc:
            refused = refusal(exc, stream_for(subject))
            if refused is None:
                raise BusUnavailable(f"publish failed: {exc!r}") from exc
            publish_refused(self.service, refused.stream, refused.reason)
            raise refused from exc
        except NATS_ERRORS as exc:
            raise BusUnavailable(f"publish failed: {exc!r}") from exc
        published(self.service, subject)

    async def ready(self) -> bool:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return False
        try:
            await nc.flush(timeout=1)
        except NATS_ERRORS:
            return False
        return True

    async def consumer_lag(self) -> dict[str, tuple[int, int]]:
        js = self._js
        if js is None:
            raise BusUnavailable("not connected to NATS")
        lag: dict[str, tuple[int, int]] = {}
        for subject, _ in self._handlers:
            durable = durable_name(self.service, subject)
            info = await js.consumer_info(stream_for(subject.wire), durable)
            lag[durable] = (info.num_pending or 0, info.num_ack_pending or 0)
        return lag

    async def dead_letters(self) -> list[DeadLetter]:
        """Read this service's dead letters back from the DEADLETTER stream."""
        if self._js is None:
            raise BusUnavailable("not connected to NATS")
        return await read_dead_letters(self._js, service=self.service)

    async def redrive(self, seq: int) -> DeadLetter | None:
        if self._js is None:
            raise BusUnavailable("not connected to NATS")
        return await redrive_dead_letter(self._js, seq)

    async def _consume(self, subject: Subject, handler: Handler) -> None:
        durable = durable_name(self.service, subject)
        wake = asyncio.Event()
        self._wakes.append(wake)
        lanes = self._new_lanes(freed=wake.set)
        while not self._closing:
            nc, js = self._nc, self._js
            if nc is None or js is None:
                raise RuntimeError("consuming before connecting")
            pull: StandingPull | None = None
            try:
                self.server_consumers[durable] = await self._ensure_consumer(js, subject)
                pull = StandingPull(
                    nc,
                    stream=stream_for(subject.wire),
                    durable=durable,
                    lanes=lanes,
                    dispatcher=self.dispatcher,
                    deliver=lambda msg: self._deliver(lanes, durable, handler, msg),
                    wake=wake,
                    heartbeat=self.pull_heartbeat,
                )
                await pull.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Disconnected, or the consumer vanished with a wiped server: set it up again.
                log.warning(
                    "consume failed, retrying", extra={"durable": durable, "error": repr(exc)}
                )
                await asyncio.sleep(0.5)
            finally:
                if pull is not None:
                    await pull.close()

    def _deliver(self, lanes: Lanes, durable: str, handler: Handler, msg: Msg) -> None:
        """A message of `durable`'s standing pull, handed to the dispatcher in its lane, with
        what the server applies to the durable (its ack_wait if shorter, its max_deliver)."""
        server = self.server_consumers[durable]
        self._submit(
            lanes,
            _JsDelivery(self, msg, durable),
            handler,
            ack_wait=min(server.ack_wait, self.ack_wait),
            server_max_deliver=server.max_deliver,
        )
