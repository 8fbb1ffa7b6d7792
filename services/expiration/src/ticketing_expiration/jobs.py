"""The expiry job, run by the RQ worker when an order's time is up.

It publishes expiration:complete with an event id derived from the order id: a retried or
duplicated job publishes the same id, which JetStream drops within its de-duplication window
(and orders ignores an expiry of an order that is no longer `created` anyway). A failed publish
raises, so RQ retries the job.

The worker runs jobs in its own process (no fork per job: forking, setting up tracing and
connecting to NATS for every job made a burst of expiries queue behind each other; see
BENCHMARKS.md, "Between 1eddfd6 and PREVIOUS"), so one NATS connection serves every job of the
process, on an event loop of its own that runs only while a job publishes. A connection that
went stale meanwhile (the server closes one whose pings go unanswered while no job runs) fails
the publish, which is tried once more on a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import nats
import nats.errors
from nats.aio.client import Client
from opentelemetry.trace import SpanKind
from redis import Redis
from rq import get_current_job

from ticketing_common.events import Event, ExpirationComplete, Subject, encode
from ticketing_common.mongo import as_utc
from ticketing_common.telemetry import tracing
from ticketing_common.telemetry.tracing import TraceCarrier
from ticketing_expiration import firing, repository
from ticketing_expiration.settings import get_settings

log = logging.getLogger("ticketing.expiration")

# RQ's schedule has whole-second resolution (scores and clock are truncated to the second), so
# a job can reach a worker up to a second before it is due; it waits out the rest rather than
# cancel an order early.
MAX_EARLY_SECONDS = 1.0
SERVICE = "expiration"


def expiration_event(order_id: str) -> Event[ExpirationComplete]:
    return Event[ExpirationComplete](
        id=repository.event_id_for(order_id),
        subject=Subject.EXPIRATION_COMPLETE,
        data=ExpirationComplete(order_id=order_id),
    )


class _Publisher:
    """The process's NATS connection for expiries, on its own event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._nc: Client | None = None
        self._url = ""

    def publish(self, nats_url: str, order_id: str, *, connect_timeout: float) -> None:
        self._loop.run_until_complete(self._publish(nats_url, order_id, connect_timeout))

    async def _connect(self, nats_url: str, connect_timeout: float) -> Client:
        if self._nc is not None and self._url == nats_url and self._nc.is_connected:
            return self._nc
        await self._drop()
        try:
            # nats-py retries a failed first connect max_reconnect_attempts times, 2 s apart; a
            # job should fail fast instead and leave the retrying to RQ.
            self._nc = await asyncio.wait_for(
                nats.connect(
                    nats_url,
                    name="expiration-worker",
                    connect_timeout=max(1, int(connect_timeout)),
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                ),
                timeout=connect_timeout,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise ConnectionError(f"NATS not reachable: {exc!r}") from exc
        self._url = nats_url
        return self._nc

    async def _drop(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = None

    async def _publish(self, nats_url: str, order_id: str, connect_timeout: float) -> None:
        """Publish expiration:complete and wait for JetStream's ack; raise if that fails.

        A bare connection, not the services' JetStreamBus: that one declares every stream on
        connect. The streams exist (the services declare them); if not, the publish fails and
        RQ retries.
        """
        event = expiration_event(order_id)
        for attempt in (1, 2):
            nc = await self._connect(nats_url, connect_timeout)
            try:
                await nc.jetstream(timeout=connect_timeout).publish(
                    event.subject.wire,
                    encode(event),
                    # The job's span is the parent of orders' handling of it.
                    headers={"Nats-Msg-Id": event.id, **tracing.headers()},
                )
                return
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                await self._drop()  # stale, or the server went away: a new one next time
                if attempt == 2:
                    raise ConnectionError(f"expiry not published: {exc!r}") from exc


_publisher = _Publisher()


def expire(
    order_id: str,
    due_at: datetime,
    *,
    redis: Redis,
    nats_url: str,
    connect_timeout: float,
) -> str:
    """Publish the order's expiry unless it was cancelled meanwhile; what happened, as text.

    `due_at` is the order's expiresAt plus the grace (see `Settings.expiry_grace_seconds`).
    """
    early = (due_at - datetime.now(UTC)).total_seconds()
    if early > 0:
        time.sleep(min(early, MAX_EARLY_SECONDS))
    if repository.is_cancelled(redis, order_id=order_id):
        log.info("order cancelled, no expiry published", extra={"order": order_id})
        firing.record(
            redis, delay=(datetime.now(UTC) - due_at).total_seconds(), outcome="cancelled"
        )
        return "cancelled"
    _publisher.publish(nats_url, order_id, connect_timeout=connect_timeout)
    lag = (datetime.now(UTC) - due_at).total_seconds()
    log.info("expiration published", extra={"order": order_id, "lag_seconds": round(lag, 3)})
    firing.record(redis, delay=lag, outcome="published")
    return "published"


def expire_order(order_id: str, due_at: str, trace: TraceCarrier | None = None) -> str:
    """The RQ job (see `job_guard.EXPIRE_JOB`): arguments as JSON-serialised at scheduling.

    (Jobs scheduled before the grace existed carry the expiresAt itself: due then.) `trace` is
    the context of the handler that scheduled it: the job's span continues the order's trace.
    """
    settings = get_settings()
    job = get_current_job()
    redis: Redis = job.connection if job is not None else repository.connect(settings.redis_url)
    with (
        tracing.in_process(SERVICE, settings, process="expiration-worker"),
        tracing.span(
            SERVICE,
            "expire order",
            kind=SpanKind.CONSUMER,
            parent=trace,
            root=True,
            attributes={tracing.ORDER_ID: order_id, "rq.job.id": job.id if job else ""},
        ) as span,
    ):
        outcome = expire(
            order_id,
            as_utc(datetime.fromisoformat(due_at)),
            redis=redis,
            nats_url=settings.nats_url,
            connect_timeout=settings.nats_connect_timeout_seconds,
        )
        if span is not None:
            span.set_attribute("expiry.outcome", outcome)
        return outcome
