"""The bus on NATS JetStream (nats-py).

One connection per process, reconnecting forever on its own; streams declared from `STREAMS`;
one durable pull consumer per service and subject with explicit ack, `ack_wait` and a finite
`max_deliver`. Pull consumers share work: two processes of one service each get a part of the
messages, never the same one twice unless it was not acked in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from ticketing_common.bus.base import (
    BusUnavailable,
    DeadLetter,
    Handler,
    Verdict,
    decide,
    durable_name,
)
from ticketing_common.bus.streams import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, STREAMS, stream_for
from ticketing_common.events import Event, Subject, encode

log = logging.getLogger("ticketing.bus")

_NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, OSError, asyncio.TimeoutError)


class JetStreamBus:
    def __init__(
        self,
        url: str,
        service: str,
        *,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        retry_delay: float = 0.5,
        publish_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.service = service
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.retry_delay = retry_delay
        self.publish_timeout = publish_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._handlers: list[tuple[Subject, Handler]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self._closing = False

    def subscribe(self, subject: Subject, handler: Handler) -> None:
        self._handlers.append((subject, handler))

    async def start(self) -> None:
        """Connect in the background: a service must serve HTTP even while NATS is down."""
        self._tasks.append(asyncio.create_task(self._connect_forever(), name="nats-connect"))

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
                await self._declare_streams(js)
            except _NATS_ERRORS as exc:
                log.warning("nats not reachable, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
                with contextlib.suppress(Exception):
                    await nc.close()
                continue
            self._nc, self._js = nc, js
            self._connected.set()
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

    async def _declare_streams(self, js: JetStreamContext) -> None:
        for spec in STREAMS:
            config = StreamConfig(
                name=spec.name,
                subjects=list(spec.subjects),
                storage=StorageType.FILE,
                max_age=spec.max_age_seconds,
                duplicate_window=spec.duplicate_window_seconds,
            )
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                # Exists with other settings: bring it to the declared ones.
                await js.update_stream(config)

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats error", extra={"error": repr(exc)})

    async def _on_disconnected(self) -> None:
        log.warning("nats disconnected")

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected")
        if self._js is not None:
            # A server that lost its store (a new volume) must get its streams back.
            with contextlib.suppress(*_NATS_ERRORS):
                await self._declare_streams(self._js)

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def publish(self, event: Event[Any]) -> None:
        await self.publish_raw(event.subject.wire, encode(event), msg_id=event.id)

    async def publish_raw(self, subject: str, payload: bytes, *, msg_id: str) -> None:
        nc, js = self._nc, self._js
        if nc is None or js is None or not nc.is_connected:
            # Do not let nats-py buffer it while reconnecting: the outbox keeps it safer.
            raise BusUnavailable("not connected to NATS")
        try:
            await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
        except _NATS_ERRORS as exc:
            raise BusUnavailable(f"publish failed: {exc!r}") from exc

    async def ready(self) -> bool:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return False
        try:
            await nc.flush(timeout=1)
        except _NATS_ERRORS:
            return False
        return True

    async def dead_letters(self) -> list[DeadLetter]:
        """Read this service's dead letters back from the DEADLETTER stream."""
        if self._js is None:
            raise BusUnavailable("not connected to NATS")
        out: list[DeadLetter] = []
        sub = await self._js.pull_subscribe(
            f"{DEAD_LETTER_PREFIX}.{self.service}.>",
            stream=DEAD_LETTER_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=5
            ),
        )
        try:
            while True:
                try:
                    msgs = await sub.fetch(batch=100, timeout=0.5)
                except TimeoutError:
                    break
                for m in msgs:
                    h = m.headers or {}
                    out.append(
                        DeadLetter(
                            subject=h.get("Ticketing-Subject", ""),
                            durable=h.get("Ticketing-Durable", ""),
                            payload=m.data,
                            deliveries=int(h.get("Ticketing-Deliveries", "0")),
                            error=h.get("Ticketing-Error", ""),
                        )
                    )
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return out

    async def _consume(self, subject: Subject, handler: Handler) -> None:
        durable = durable_name(self.service, subject)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            filter_subject=subject.wire,
            max_ack_pending=1000,
        )
        sub: JetStreamContext.PullSubscription | None = None
        while not self._closing:
            try:
                if sub is None:
                    assert self._js is not None
                    sub = await self._js.pull_subscribe(
                        subject.wire,
                        durable=durable,
                        stream=stream_for(subject.wire),
                        config=config,
                    )
                # batch=1: with a larger batch, nats-py's lingering pull holds the first message
                # that arrives on an idle consumer until the rest of the batch or the timeout
                # (seen as ~1 s stalls); one message per pull keeps delivery immediate.
                msgs = await sub.fetch(batch=1, timeout=2)
            except TimeoutError:
                # An idle pull (nats-py raises its own subclass or the builtin): pull again.
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Disconnected, or the consumer vanished with a wiped server: set it up again.
                log.warning(
                    "consume failed, retrying", extra={"durable": durable, "error": repr(exc)}
                )
                if sub is not None:
                    # Drop the old inbox subscription, or each failure would leak one.
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                sub = None
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self._deliver(msg, handler, durable)

    async def _deliver(self, msg: Msg, handler: Handler, durable: str) -> None:
        delivered = msg.metadata.num_delivered or 1
        decision = await decide(
            handler,
            msg.data,
            delivered=delivered,
            max_deliver=self.max_deliver,
            retry_delay=self.retry_delay,
            context={"service": self.service, "durable": durable, "subject": msg.subject},
        )
        try:
            if decision.verdict is Verdict.ACK:
                await msg.ack()
            elif decision.verdict is Verdict.NAK:
                await msg.nak(delay=decision.delay)
            else:
                try:
                    await self._dead_letter(msg, durable, delivered, decision.error)
                except _NATS_ERRORS:
                    # Its deliveries are used up: JetStream will not offer it again, so the log
                    # is the one place left that keeps it.
                    log.error(
                        "dead letter not stored",
                        extra={"durable": durable, "payload": msg.data.decode(errors="replace")},
                    )
                    raise
                finally:
                    await msg.term()
        except _NATS_ERRORS as exc:
            # The ack was lost: JetStream redelivers after ack_wait and the handler, being
            # idempotent, does nothing the second time.
            log.warning("ack failed", extra={"durable": durable, "error": repr(exc)})

    async def _dead_letter(self, msg: Msg, durable: str, delivered: int, error: str) -> None:
        assert self._js is not None
        meta = msg.metadata
        await self._js.publish(
            f"{DEAD_LETTER_PREFIX}.{self.service}.{durable}",
            msg.data,
            headers={
                # Unique per original message, so a retried dead-lettering is stored once.
                "Nats-Msg-Id": f"{durable}:{meta.sequence.stream if meta.sequence else 0}",
                "Ticketing-Subject": msg.subject,
                "Ticketing-Durable": durable,
                "Ticketing-Deliveries": str(delivered),
                "Ticketing-Error": error[:500],
            },
        )
