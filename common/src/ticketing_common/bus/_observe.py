"""The bus, observed: a consumer span and metrics per delivery, a count per publish.

The dispatcher wraps each delivery in `observe_delivery` (both buses share it); each bus calls
`published` once the server confirmed a message and sends `tracing.headers()` with it. Here in
the bus, not in telemetry: telemetry knows nothing of the bus (the metrics and spans it defines
are plain), and the bus uses them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.trace import SpanKind

from ticketing_common.bus.contract import Delivery
from ticketing_common.bus.streams import original_subject
from ticketing_common.telemetry import metrics, tracing


@dataclass
class Observed:
    """A delivery being handled: the dispatcher sets `outcome` once it is settled."""

    outcome: str = "error"


def published(service: str, subject: str) -> None:
    metrics.EVENTS_PUBLISHED.labels(service, subject).inc()


def publish_refused(service: str, stream: str, reason: str) -> None:
    """The server refused a publish for lack of room (`PublishRefused`)."""
    metrics.PUBLISH_REFUSED.labels(service, stream, reason).inc()


def held(service: str, consumer: str, dependency: str, change: int) -> None:
    """A delivery of `consumer` started (+1) or stopped (-1) being held for `dependency`."""
    metrics.DELIVERIES_HELD.labels(service, consumer, dependency).inc(change)


@contextlib.contextmanager
def observe_delivery(service: str, delivery: Delivery) -> Iterator[Observed]:
    """One delivery from start to settlement: a consumer span, child of the context in the
    message's headers, and the delivery's metrics (outcome: ack, nak, dead, or error when
    settling failed)."""
    subject = original_subject(delivery.subject, delivery.durable)
    consumer = delivery.durable
    observed = Observed()

    def record(seconds: float) -> None:
        metrics.HANDLING_DURATION.labels(service, consumer).observe(seconds)
        metrics.EVENTS_CONSUMED.labels(service, consumer, subject, observed.outcome).inc()
        if delivery.delivered > 1:
            metrics.EVENTS_REDELIVERED.labels(service, consumer, subject).inc()
        if observed.outcome == "dead":
            metrics.EVENTS_DEAD_LETTERED.labels(service, consumer, subject).inc()

    with tracing.measured(
        service,
        f"handle {subject}",
        kind=SpanKind.CONSUMER,
        parent=delivery.headers,
        root=True,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": subject,
            "messaging.consumer.group.name": consumer,
            "messaging.message.delivery_count": delivery.delivered,
        },
        outcome=lambda: ("messaging.outcome", observed.outcome, observed.outcome != "ack"),
        record=record,
    ):
        yield observed
