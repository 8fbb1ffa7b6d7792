"""The expiry job, run by the RQ worker when an order's time is up.

It publishes expiration:complete with an event id derived from the order id: a retried or
duplicated job publishes the same id, which JetStream drops within its de-duplication window
(and orders ignores an expiry of an order that is no longer `created` anyway). A failed publish
raises, so RQ retries the job.

Each run opens its own short NATS connection: the default RQ worker forks a fresh process per job,
so no connection could outlive a job anyway, and an expiry is one message per order; the cost is
a few milliseconds against a deadline of a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import nats
import nats.errors
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


async def publish_expiration(nats_url: str, order_id: str, *, connect_timeout: float) -> None:
    """Publish expiration:complete and wait for JetStream's ack; raise if that fails.

    A bare connection, not the services' JetStreamBus: that one declares every stream on
    connect, six round trips per job, which made a burst of expiries queue behind each other.
    The streams exist (the services declare them); if not, the publish fails and RQ retries.
    """
    try:
        # nats-py retries a failed first connect max_reconnect_attempts times, 2 s apart; a job
        # should fail fast instead and leave the retrying to RQ.
        nc = await asyncio.wait_for(
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
    try:
        event = expiration_event(order_id)
        await nc.jetstream(timeout=connect_timeout).publish(
            event.subject.wire,
            encode(event),
            # The job's span is the parent of orders' handling of it.
            headers={"Nats-Msg-Id": event.id, **tracing.headers()},
        )
    finally:
        await nc.close()


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
    asyncio.run(publish_expiration(nats_url, order_id, connect_timeout=connect_timeout))
    lag = (datetime.now(UTC) - due_at).total_seconds()
    log.info("expiration published", extra={"order": order_id, "lag_seconds": round(lag, 3)})
    firing.record(redis, delay=lag, outcome="published")
    return "published"


def expire_order(order_id: str, due_at: str, trace: TraceCarrier | None = None) -> str:
    """The RQ job (see `repository.EXPIRE_JOB`): arguments as JSON-serialised at scheduling.

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
