"""The bus on NATS JetStream (nats-py).

One connection per process, reconnecting forever on its own; streams declared from `STREAMS`;
one durable pull consumer per service and subject with explicit ack and `ack_wait`. Pull
consumers share work: two processes of one service each get a part of the messages, never the
same one twice unless it was not acked (nor signalled in progress) in time.

Consumer config is reconciled on every (re)subscribe: nats-py's `pull_subscribe` reuses an
existing durable exactly as it is, so a changed setting (ack_wait, a lower max_deliver left by
an older version) would otherwise be silently ignored, and with it events lost. Editable fields
are updated in place (a create request on an existing durable is an update); a field JetStream
cannot change in place (deliver or ack policy) is logged at error and the bus runs with the
server's actual values, which is also what it decides dead letters from.

The server-side `max_deliver` is unlimited (-1): the bus counts failures itself and dead-letters
poison after NATS_MAX_DELIVER failed deliveries, while RetryLater deferrals (bounded by the retry
horizon) and infrastructure failures (held, never counted) do not use up deliveries; see
`base.py`. Each durable also filters on its own re-drive subject (`streams.redrive_subject`).

Streams are bounded by bytes with interest retention (see `streams.py`): on connecting, before
anything is published, every bus creates the contract's durables that are missing
(`streams.CONSUMERS`), and a service running as itself (`contract=True`) first checks that it
subscribes to exactly its entry and deletes its own durables that the entry no longer names. A
publish the server refuses for lack of room raises `PublishRefused` (a BusUnavailable: the
outbox keeps the event) and is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Unpack

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from ticketing_common.bus import deadletters
from ticketing_common.bus.base import (
    UNLIMITED,
    BusCore,
    BusTuning,
    BusUnavailable,
    DeadLetter,
    Delivery,
    Handler,
    Lanes,
    PublishRefused,
    Unpublishable,
    durable_name,
)
from ticketing_common.bus.streams import (
    CONSUMERS,
    DEAD_LETTER_STREAM,
    STREAMS,
    StreamSpec,
    check_contract,
    redrive_subject,
    stream_for,
    stream_specs,
)
from ticketing_common.events import Event, Subject, encode
from ticketing_common.telemetry import tracing
from ticketing_common.telemetry.bus import publish_refused, published

log = logging.getLogger("ticketing.bus")

# The most messages one pull asks for (fewer when fewer handler slots are free).
FETCH_BATCH = 64
# A pull stands on the server this long, delivering messages as they come; while it has nothing
# to deliver the server sends a heartbeat this often, so a pull lost with its server (a restart)
# is noticed after two silent heartbeats and asked again.
PULL_EXPIRES = 30.0
PULL_HEARTBEAT = 5.0
_NANOS = 1_000_000_000

_NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, OSError, asyncio.TimeoutError)

# JetStream's error codes for a message (or a stream) refused for lack of room, found with the
# real server: 10077 is a store failure, "maximum bytes exceeded" for a discard-new stream at
# its max_bytes; 10023 "insufficient resources" when the server's store is full; 10047 and 10028
# when a stream's reservation does not fit the store (file, memory).
STREAM_STORE_FAILED = 10077
STORE_FULL_CODES = frozenset({10023, 10047, 10028})
# 10148: a create-only request for a consumer that exists (with another config).
CONSUMER_EXISTS = 10148
MAX_ACK_PENDING = 1000


@dataclass(frozen=True)
class ServerConsumer:
    """What the server actually applies to a durable (after reconciliation, or despite it)."""

    max_deliver: int
    ack_wait: float


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
        except _NATS_ERRORS as exc:
            # Lost: JetStream redelivers after ack_wait and the handler, being idempotent, does
            # nothing the second time (or the bus decides again).
            log.warning("ack failed", extra={"durable": self.durable, "error": repr(exc)})

    async def dead(self, error: str) -> None:
        js = self._bus._js
        if js is None:
            raise BusUnavailable("not connected to NATS")
        try:
            await deadletters.store(js, self.letter(error))
        except nats.js.errors.APIError as exc:
            # DEADLETTER full: raised, so the dispatcher naks it and dead-letters it later.
            refused = refusal(exc, DEAD_LETTER_STREAM)
            if refused is not None:
                publish_refused(self._bus.service, refused.stream, refused.reason)
                raise refused from exc
            raise
        await self._settle(self._msg.term())


class JetStreamBus(BusCore):
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

    async def _drop_stale_durables(self, js: JetStreamContext) -> None:
        """Delete this service's durables that its registry entry no longer names: one left by
        the previous version (orders' expiration:complete) would keep interest in every such
        message, and its stream would fill up.

        Not while a process still consumes it (pulls waiting, messages being handled): during a
        rolling upgrade the old version's pods do, and a durable deleted under them would be
        made again by them, from the first message. Such a one is looked at again every
        `STALE_RECHECK_SECONDS` until it is idle, then deleted.
        """
        left = False
        wanted = set(self.consumers.get(self.service, ()))
        for subject in Subject:
            if subject in wanted:
                continue
            durable = durable_name(self.service, subject)
            stream = stream_for(subject.wire)
            try:
                info = await js.consumer_info(stream, durable)
                if (info.num_waiting or 0) > 0 or (info.num_ack_pending or 0) > 0:
                    left = True
                    log.warning(
                        "a durable this service no longer consumes is still in use (an older "
                        "version's pods?): left for now",
                        extra={"durable": durable, "stream": stream},
                    )
                    continue
                await js.delete_consumer(stream, durable)
            except nats.js.errors.NotFoundError:
                continue
            log.warning(
                "deleted a durable this service no longer consumes",
                extra={"durable": durable, "stream": stream},
            )
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
            with contextlib.suppress(*_NATS_ERRORS):
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
            except _NATS_ERRORS as exc:
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
            except _NATS_ERRORS as exc:
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
        except _NATS_ERRORS as exc:
            raise BusUnavailable(f"publish failed: {exc!r}") from exc
        published(self.service, subject)

    async def ready(self) -> bool:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return False
        try:
            await nc.flush(timeout=1)
        except _NATS_ERRORS:
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
        return await deadletters.read(self._js, service=self.service)

    async def redrive(self, seq: int) -> DeadLetter | None:
        if self._js is None:
            raise BusUnavailable("not connected to NATS")
        return await deadletters.redrive(self._js, seq)

    def consumer_config(self, subject: Subject) -> ConsumerConfig:
        """The config this bus wants for its durable on `subject`."""
        return consumer_config(self.service, subject, ack_wait=self.ack_wait)

    async def _ensure_consumer(self, js: JetStreamContext, subject: Subject) -> ServerConsumer:
        """Create the durable, or bring an existing one to this bus's config; return what the
        server actually applies."""
        want = self.consumer_config(subject)
        durable = durable_name(self.service, subject)
        stream = stream_for(subject.wire)
        try:
            info = await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            info = await js.add_consumer(stream, want)
            return _server_values(info)
        drift = _drift(info.config, want)
        fixed = [f for f in drift if f in ("deliver_policy", "ack_policy")]
        if fixed:
            log.error(
                "consumer config cannot be updated in place; running with the server's",
                extra={
                    "durable": durable,
                    "fields": fixed,
                    "hint": f"delete the consumer to recreate it: nats consumer rm {stream} "
                    f"{durable} (it starts again from the first message)",
                },
            )
            return _server_values(info)
        if drift:
            log.warning(
                "consumer config differs from the settings, updating it",
                extra={"durable": durable, "fields": drift},
            )
            try:
                info = await js.add_consumer(stream, want)  # on an existing durable: an update
            except nats.js.errors.APIError as exc:
                log.error(
                    "consumer config update refused; running with the server's",
                    extra={"durable": durable, "fields": drift, "error": repr(exc)},
                )
        return _server_values(info)

    async def _consume(self, subject: Subject, handler: Handler) -> None:
        durable = durable_name(self.service, subject)
        wake = asyncio.Event()
        self._wakes.append(wake)
        lanes = self._new_lanes(freed=wake.set)
        while not self._closing:
            nc, js = self._nc, self._js
            if nc is None or js is None:
                raise RuntimeError("consuming before connecting")
            pull: _Pull | None = None
            try:
                self.server_consumers[durable] = await self._ensure_consumer(js, subject)
                pull = _Pull(self, nc, subject, durable, lanes, handler, wake)
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


class _PullLost(Exception):
    """The standing pull is gone from the server (its consumer deleted, the server wiped)."""


class _Pull:
    """A consumer's standing pull requests, as nats.go's `Consume` keeps them.

    nats-py's `fetch` sends two requests for each batch it returns (a no-wait probe, then a
    waiting pull) and returns after the first message when they trickle in: under steady load
    that is about two requests, a status message and a timer per message, more CPU than the
    handler's own work, and each message after a batch waits for the next request to reach
    the server. Here requests stand on the server and deliver as messages come: one request
    asks for as many messages as there are free handler slots, the messages it still owes are
    counted, and a new one is sent when slots free up beyond what is owed. The server answers
    an expired request with a 408 saying how many it no longer owes, and sends a heartbeat
    while it has nothing to deliver: a pull that is silent for two heartbeats (its server
    restarted) is given up and asked again; one the server says is gone raises `_PullLost`.
    """

    def __init__(
        self,
        bus: JetStreamBus,
        nc: Client,
        subject: Subject,
        durable: str,
        lanes: Lanes,
        handler: Handler,
        wake: asyncio.Event,
    ) -> None:
        self.bus, self.nc, self.durable, self.lanes = bus, nc, durable, lanes
        self.handler = handler
        self.wake = wake
        self.heartbeat = bus.pull_heartbeat
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream_for(subject.wire)}.{durable}"
        self.inbox = nc.new_inbox()
        self.owed = 0
        self.heard = time.monotonic()
        self.lost: str | None = None
        self.sub: Subscription | None = None
        self._ticker: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        self.sub = await self.nc.subscribe(self.inbox, cb=self._on_msg)
        # Ask for more when this many slots are free beyond what is owed (or any, when nothing
        # is): fewer, larger requests under load, and no wait for an idle consumer.
        threshold = max(1, self.lanes.limit // 4)
        reconnects = self.nc.stats["reconnects"]
        # A look every heartbeat at least, for a pull gone silent (a timer: a wait_for per turn
        # would cost as much as the rest of the turn, and a turn comes with every message).
        self._ticker = asyncio.get_running_loop().call_later(self.heartbeat, self._tick)
        try:
            await self._loop(threshold, reconnects)
        finally:
            if self._ticker is not None:
                self._ticker.cancel()

    def _tick(self) -> None:
        self.wake.set()
        self._ticker = asyncio.get_running_loop().call_later(self.heartbeat, self._tick)

    async def _loop(self, threshold: int, reconnects: int) -> None:
        while True:
            self.wake.clear()
            if self.lost is not None:
                raise _PullLost(self.lost)
            now = time.monotonic()
            if self.nc.stats["reconnects"] != reconnects:
                # A new connection: what stood on a restarted server is gone. (A server that
                # stayed up keeps the old requests for the resubscribed inbox until they
                # expire: until then up to twice the handler slots may be in flight.)
                reconnects, self.owed, self.heard = self.nc.stats["reconnects"], 0, now
            if self.owed and now - self.heard > 2 * self.heartbeat + 1:
                raise _PullLost(f"no message nor heartbeat for {now - self.heard:.0f} s")
            if self.bus.dispatcher.paused(self.durable):
                # A delivery is held and this consumer's handler needs what is down (or it is
                # this consumer's own): it asks for nothing more; the service's others go on.
                await self.bus.dispatcher.wait_open(self.durable)
                continue
            want = min(self.lanes.free - self.owed, FETCH_BATCH)
            if want > 0 and (not self.owed or want >= threshold) and self.nc.is_connected:
                await self._ask(want)
            await self.wake.wait()

    async def _ask(self, batch: int) -> None:
        request = {
            "batch": batch,
            "expires": int(max(PULL_EXPIRES, 4 * self.heartbeat) * _NANOS),
            "idle_heartbeat": int(self.heartbeat * _NANOS),
        }
        await self.nc.publish(self.next_subject, json.dumps(request).encode(), reply=self.inbox)
        if not self.owed:
            self.heard = time.monotonic()
        self.owed += batch

    async def _on_msg(self, msg: Msg) -> None:
        self.heard = time.monotonic()
        status = JetStreamContext.is_status_msg(msg)
        if not status:
            self.owed = max(self.owed - 1, 0)
            server = self.bus.server_consumers[self.durable]
            self.bus._submit(
                self.lanes,
                _JsDelivery(self.bus, msg, self.durable),
                self.handler,
                ack_wait=min(server.ack_wait, self.bus.ack_wait),
                server_max_deliver=server.max_deliver,
            )
            return
        if status == "100":  # an idle heartbeat: the request stands
            return
        headers = msg.headers or {}
        pending = headers.get("Nats-Pending-Messages")
        description = headers.get("Description", "")
        if status == "408" or (pending is not None and "Consumer Deleted" not in description):
            # Expired (408), or ended early (409: the server shutting down, ...): it no longer
            # owes these (all it owed, if it does not say), and a new pull is asked for.
            owed = int(pending) if pending is not None and pending.isdigit() else self.owed
            self.owed = max(self.owed - owed, 0)
        else:
            # Anything else says the pull cannot stand: no responders (503, the durable is gone
            # with a wiped store), consumer deleted, a request refused (400, a 409 limit).
            # Asking again at once would be answered the same way, as fast as it can ask: set
            # the durable up again after a pause instead (`_consume`).
            self.owed = 0
            self.lost = f"{status} {description}".strip()
        self.wake.set()

    async def close(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
            self.sub = None


def _server_values(info: ConsumerInfo) -> ServerConsumer:
    config = info.config
    return ServerConsumer(
        max_deliver=config.max_deliver if config.max_deliver else UNLIMITED,
        ack_wait=config.ack_wait or 30.0,
    )


def _drift(actual: ConsumerConfig, want: ConsumerConfig) -> list[str]:
    """The fields of `want` that the server's `actual` config does not match."""
    fields: list[str] = []
    actual_filters = actual.filter_subjects or (
        [actual.filter_subject] if actual.filter_subject else []
    )
    if sorted(actual_filters) != sorted(want.filter_subjects or []):
        fields.append("filter_subjects")
    if (actual.max_deliver or UNLIMITED) != want.max_deliver:
        fields.append("max_deliver")
    if abs((actual.ack_wait or 0.0) - (want.ack_wait or 0.0)) > 1e-3:
        fields.append("ack_wait")
    if actual.max_ack_pending != want.max_ack_pending:
        fields.append("max_ack_pending")
    # The server's answer holds plain strings, the wanted config enums ("all" vs ALL).
    if _value(actual.deliver_policy) != _value(want.deliver_policy):
        fields.append("deliver_policy")
    if _value(actual.ack_policy) != _value(want.ack_policy):
        fields.append("ack_policy")
    return fields


def _value(field: Any) -> Any:
    return getattr(field, "value", field)


def refusal(exc: nats.js.errors.APIError, stream: str) -> PublishRefused | None:
    """The server's answer as a refusal for lack of room, or None if it is something else."""
    description = exc.description or ""
    if exc.err_code == STREAM_STORE_FAILED and "exceeded" in description:
        reason = "stream_full"
    elif exc.err_code in STORE_FULL_CODES:
        reason = "store_full"
    else:
        return None
    return PublishRefused(
        f"{stream} refused the message: {description} ({exc.err_code})",
        stream=stream,
        reason=reason,
    )


def consumer_config(service: str, subject: Subject, *, ack_wait: float) -> ConsumerConfig:
    """The config of `service`'s durable on `subject`: what its own bus reconciles it to, and
    what another service's bus creates it with when it is missing."""
    durable = durable_name(service, subject)
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_deliver=UNLIMITED,
        filter_subjects=[subject.wire, redrive_subject(subject.wire, durable)],
        max_ack_pending=MAX_ACK_PENDING,
    )


def stream_config(spec: StreamSpec, *, replicas: int = 1) -> StreamConfig:
    """The server config of a declared stream, kept by `replicas` servers of the cluster."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        num_replicas=replicas,
        retention=RetentionPolicy(spec.retention),
        # A full stream refuses new messages (the outbox keeps them) rather than delete ones
        # not consumed yet: see streams.py.
        discard=DiscardPolicy.NEW,
        max_bytes=spec.max_bytes,
        max_age=spec.max_age_seconds,
        duplicate_window=spec.duplicate_window_seconds,
    )


async def create_missing_consumers(
    js: JetStreamContext,
    consumers: Mapping[str, tuple[Subject, ...]] = CONSUMERS,
    *,
    ack_wait: float = 30.0,
) -> None:
    """Create every durable of the contract that does not exist yet, as its owner would.

    Create only: a durable that exists is its owner's, who reconciles it with its own settings
    (`_ensure_consumer`); so the request says "create" (JetStream's create action), and one that
    appeared meanwhile with another config is left as it is rather than updated to ours."""
    for service, subjects in consumers.items():
        for subject in subjects:
            durable = durable_name(service, subject)
            stream = stream_for(subject.wire)
            try:
                await js.consumer_info(stream, durable)
                continue
            except nats.js.errors.NotFoundError:
                pass
            config = consumer_config(service, subject, ack_wait=ack_wait)
            request = {"stream_name": stream, "config": config.as_dict(), "action": "create"}
            try:
                await js._api_request(
                    f"{js._prefix}.CONSUMER.CREATE.{stream}.{durable}",
                    json.dumps(request).encode(),
                    timeout=js._timeout,
                )
            except nats.js.errors.APIError as exc:
                if exc.err_code != CONSUMER_EXISTS:
                    raise
                continue
            log.info("created a durable of the contract", extra={"durable": durable})


async def declare_streams(
    js: JetStreamContext,
    *,
    replicas: int = 1,
    specs: tuple[StreamSpec, ...] = STREAMS,
    consumers: Mapping[str, tuple[Subject, ...]] = CONSUMERS,
    ack_wait: float = 30.0,
) -> None:
    """Declare the streams and create the contract's missing durables.

    In that order for a stream that existed with other settings: its durables are created
    before it is updated, so when an older limits stream becomes an interest one (nats-server
    2.10 and later change retention in place) its messages are kept for every durable of the
    contract, not only for those that had been created already."""
    existing: list[StreamConfig] = []
    for spec in specs:
        config = stream_config(spec, replicas=replicas)
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            existing.append(config)  # exists with other settings: updated below
        except nats.js.errors.APIError as exc:
            if exc.err_code in STORE_FULL_CODES:
                log.error(
                    "stream does not fit the JetStream store",
                    extra={"stream": spec.name, "max_bytes": spec.max_bytes, **_store_hint(specs)},
                )
            raise
    await create_missing_consumers(js, consumers, ack_wait=ack_wait)
    for config in existing:
        try:
            await js.update_stream(config)
        except nats.js.errors.APIError as exc:
            # The bus still works on the stream as it is; an operator must act.
            log.error(
                "stream config update refused; running with the server's",
                extra={
                    "stream": config.name,
                    "error": f"{exc.description} ({exc.err_code})",
                    "hint": "max_bytes: the NATS_MAX_BYTES_* settings together must fit the "
                    "server's max_file_store; retention: nats-server 2.10 or later changes "
                    "it in place, an older one cannot: upgrade, or once every consumer has "
                    f"caught up, `nats stream rm {config.name}` and restart a service "
                    "(it declares the stream again)",
                    **(_store_hint(specs) if exc.err_code in STORE_FULL_CODES else {}),
                },
            )


def _store_hint(specs: tuple[StreamSpec, ...]) -> dict[str, Any]:
    total = sum(s.max_bytes for s in specs)
    return {
        "streams_max_bytes": total,
        "hint": f"the streams' max_bytes ({total} bytes together, NATS_MAX_BYTES_*) must fit "
        "the server's jetstream max_file_store (the deployment's is 4G)",
    }
