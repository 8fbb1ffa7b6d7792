"""Traces: OpenTelemetry spans that follow an order across the services.

One tracer per service (a process is one service, but tests run several in one process), set up
when the service starts (`configure`) from the OpenTelemetry SDK's own variables, which the SDK
reads from the environment itself, and the service's TRACES_DIR:
- OTEL_SDK_DISABLED=true: no tracer at all. Every helper here is then a no-op that costs a dict
  lookup, and no trace context is passed on (what `make bench` measures against).
- OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): spans are exported over
  OTLP/HTTP, in batches.
- TRACES_DIR: each span is also written as a JSON line (`jsonlines`); `make trace` reads them.
- neither: spans are still made (logs carry their ids, the context travels) but kept nowhere.
OTEL_TRACES_SAMPLER_ARG keeps that share of new traces (a continued trace follows its parent).
docs/settings.md lists them with every other setting.

How the W3C trace context (`traceparent`, `tracestate`) travels with an order:
- HTTP: a request's `traceparent` header is the parent of its span (`http.py`).
- The outbox: an entry stores the context of the span that wrote it (`outbox_entry`), so the
  relay, or a sweep in another process a minute later, publishes it in that trace
  (`publishing`, a producer span whose context goes into the message's headers).
- NATS: the headers of the message, next to `Nats-Msg-Id` (`headers`); a handler's span is
  their child (`handling`, used by the bus's dispatcher).
- RQ: the expiry job carries them in its kwargs (`carrier`); the worker's span is their child.
- A later request that acts on an order (paying it) continues the order's trace from the context
  stored with it (`continued`), linked to the request's own span.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_TRACES_SAMPLER_ARG,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, NoOpTracer, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from ticketing_common.events import (
    Event,
    ExpirationComplete,
    OrderCreated,
    OrderEnded,
    PaymentCreated,
    TicketData,
    TicketUpdated,
)
from ticketing_common.settings import ServiceSettings
from ticketing_common.telemetry._unsampled import not_sampled
from ticketing_common.telemetry.jsonlines import JsonLinesExporter

__all__ = [
    "ORDER_ID",
    "TICKET_ID",
    "TRACE_FIELD",
    "TraceCarrier",
    "TraceContextFilter",
    "Tracing",
    "annotate_event",
    "carrier",
    "configure",
    "context_of",
    "continued",
    "headers",
    "in_process",
    "measured",
    "outbox_entry",
    "publishing",
    "span",
    "tracer",
]

# Where a stored trace context lives: in an outbox entry, a replica document, a job's kwargs.
TRACE_FIELD = "_trace"
ORDER_ID = "order.id"
TICKET_ID = "ticket.id"

_PROPAGATOR = TraceContextTextMapPropagator()
_tracers: dict[str, Tracer] = {}
_providers: dict[str, TracerProvider] = {}
# Per service: the share of new traces kept (OTEL_TRACES_SAMPLER_ARG), as the bound under which
# a trace id's low 64 bits are kept (TraceIdRatioBased's rule).
_kept: dict[str, int] = {}


class TraceCarrier(TypedDict, total=False):
    """The W3C trace context as stored and sent: what `traceparent`/`tracestate` headers hold."""

    traceparent: str
    tracestate: str


@dataclass
class Tracing:
    """A service's tracing as `configure` set it up; `shutdown` exports what is left."""

    service: str
    provider: TracerProvider | None

    def force_flush(self) -> None:
        if self.provider is not None:
            self.provider.force_flush()

    def shutdown(self) -> None:
        if self.provider is None:
            return
        if _providers.get(self.service) is self.provider:
            del _providers[self.service]
            _tracers.pop(self.service, None)
            _kept.pop(self.service, None)
        self.provider.shutdown()


def configure(
    service: str,
    settings: ServiceSettings,
    *,
    process: str | None = None,
    batch: bool = True,
    processors: Sequence[SpanProcessor] = (),
) -> Tracing:
    """Set up `service`'s tracer (replacing an earlier one in this process).

    The OpenTelemetry SDK reads its own variables from the environment as it is now (a test
    sets them before this call): OTEL_SDK_DISABLED, OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and
    the exporter's other OTEL_EXPORTER_OTLP_* options, OTEL_RESOURCE_ATTRIBUTES. The share of new
    traces kept is OTEL_TRACES_SAMPLER_ARG (`_kept_share`); the settings give TRACES_DIR.

    `process` names the JSON lines file when it is not the service (the expiration worker);
    `batch=False` exports each span as it ends (a short-lived process); `processors` are added
    as they are (tests).
    """
    share = _kept_share()  # an invalid share stops the service here, whether tracing is on or not
    provider = TracerProvider(
        # The service's own name, whatever OTEL_SERVICE_NAME says: tests run several services in
        # one process, and spans are told apart by it.
        resource=Resource.create({SERVICE_NAME: service}),
        # A new trace is kept or not by `span` (the share `_kept_share`) before the SDK sees it:
        # what reaches the SDK without a parent is kept. A child follows its parent's choice,
        # here and in `span`.
        sampler=ParentBased(ALWAYS_ON),
        shutdown_on_exit=False,
    )
    made = provider.get_tracer("ticketing")
    if isinstance(made, NoOpTracer):  # OTEL_SDK_DISABLED=true, as the SDK read it
        _providers.pop(service, None)
        _tracers.pop(service, None)
        _kept.pop(service, None)
        return Tracing(service, None)
    for exporter in _exporters(settings, process or service):
        provider.add_span_processor(
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )
    for processor in processors:
        provider.add_span_processor(processor)
    _providers[service] = provider
    _tracers[service] = made
    _kept[service] = TraceIdRatioBased.get_bound_for_rate(share)
    return Tracing(service, provider)


def _kept_share() -> float:
    """The share of new traces kept, 0 to 1: OTEL_TRACES_SAMPLER_ARG (unset: every trace).

    Read here rather than by the SDK, whose own sampler applies it only under
    OTEL_TRACES_SAMPLER=traceidratio: the not-sampled short cut in `span` decides, whatever
    OTEL_TRACES_SAMPLER says. Raises ValueError when it is not a number from 0 to 1.
    """
    raw = os.environ.get(OTEL_TRACES_SAMPLER_ARG, "").strip()
    refused = ValueError(f"{OTEL_TRACES_SAMPLER_ARG} must be a number from 0 to 1, not {raw!r}")
    try:
        share = float(raw) if raw else 1.0
    except ValueError:
        raise refused from None
    if not 0.0 <= share <= 1.0:  # NaN too
        raise refused
    return share


def _exporters(settings: ServiceSettings, file_name: str) -> list[SpanExporter]:
    """Where spans go: the OTLP collector the environment names (the SDK's exporter reads its
    address and options itself), and TRACES_DIR's `<file_name>.jsonl`."""
    exporters: list[SpanExporter] = []
    if os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or os.environ.get(
        OTEL_EXPORTER_OTLP_ENDPOINT
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if settings.traces_dir:
        exporters.append(JsonLinesExporter(Path(settings.traces_dir) / f"{file_name}.jsonl"))
    return exporters


@contextlib.contextmanager
def in_process(service: str, settings: ServiceSettings, *, process: str) -> Iterator[None]:
    """Tracing for a piece of work outside the service's process (an RQ job): `service`'s tracer
    as this process has it (the worker sets it up once), or one set up for the
    block that exports each span as it ends and is shut down after it."""
    if service in _tracers:
        yield
        return
    traces = configure(service, settings, process=process, batch=False)
    try:
        yield
    finally:
        traces.shutdown()


def tracer(service: str) -> Tracer | None:
    """The service's tracer; None when tracing is off (or not set up in this process)."""
    return _tracers.get(service)


# --- the context, as it is stored and sent -------------------------------------------------------


def headers() -> dict[str, str]:
    """The current span's context as message headers (none without one)."""
    found: dict[str, str] = {}
    if _tracers:
        _PROPAGATOR.inject(found)
    return found


def carrier() -> TraceCarrier:
    """The current span's context, to store (empty without one)."""
    found = headers()
    out: TraceCarrier = {}
    if "traceparent" in found:
        out["traceparent"] = found["traceparent"]
        if "tracestate" in found:
            out["tracestate"] = found["tracestate"]
    return out


def context_of(stored: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The context a stored or received carrier names; None if it names none."""
    if not stored or not isinstance(stored.get("traceparent"), str):
        return None
    parent = _PROPAGATOR.extract({k: v for k, v in stored.items() if isinstance(v, str)})
    if not trace.get_current_span(parent).get_span_context().is_valid:
        return None
    return parent


# --- attributes ----------------------------------------------------------------------------------


def event_attributes(event: Event[Any]) -> dict[str, AttributeValue]:
    """What a span about `event` carries: the event and the order and ticket it is about (what
    `make trace ORDER=<id>` looks for)."""
    attrs: dict[str, AttributeValue] = {
        "messaging.message.id": event.id,
        "event.subject": event.subject.value,
    }
    data = event.data
    if isinstance(data, OrderCreated | OrderEnded):
        attrs[ORDER_ID] = data.id
        attrs[TICKET_ID] = data.ticket.id
    elif isinstance(data, TicketData):
        attrs[TICKET_ID] = data.id
        if isinstance(data, TicketUpdated) and data.order_id:
            attrs[ORDER_ID] = data.order_id
    elif isinstance(data, ExpirationComplete | PaymentCreated):
        attrs[ORDER_ID] = data.order_id
    return attrs


def annotate(attributes: Mapping[str, AttributeValue]) -> None:
    """Add attributes to the current span (nothing without a recording one)."""
    if not _tracers:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


def annotate_event(event: Event[Any]) -> None:
    """Add the event's attributes to the current span (a handler's)."""
    if _tracers:
        annotate(event_attributes(event))


def outbox_entry(document: dict[str, Any], event: Event[Any]) -> dict[str, Any]:
    """An outbox entry (the event as stored) with the context of the span writing it, which in
    turn gets the event's ids: the request that created an order carries `order.id`."""
    if not _tracers:
        return document
    stored = carrier()
    if stored:
        document[TRACE_FIELD] = stored
        annotate(event_attributes(event))
    return document


# --- spans ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def span(
    service: str,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Mapping[str, Any] | None = None,
    root: bool = False,
    attributes: Mapping[str, AttributeValue] | None = None,
    links: Sequence[Link] = (),
) -> Iterator[Span | None]:
    """A span of `service`, current inside the block; None when tracing is off.

    Its parent is the context `parent` names if any, else a new trace if `root`, else the
    current span.
    """
    found = _tracers.get(service)
    if found is None:
        yield None
        return
    context = context_of(parent)
    if context is None and root:
        context = otel_context.Context()
    # The not-sampled short cut (`_unsampled`): a span not sampled is made without the SDK.
    dropped = not_sampled(service, context, _kept)
    if dropped is not None:
        token = otel_context.attach(trace.set_span_in_context(dropped, context))
        try:
            yield dropped
        finally:
            otel_context.detach(token)
        return
    with found.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes, links=links
    ) as current:
        yield current


@contextlib.contextmanager
def measured(
    service: str,
    name: str,
    *,
    kind: SpanKind,
    attributes: Mapping[str, AttributeValue],
    outcome: Callable[[], tuple[str, AttributeValue, bool]],
    record: Callable[[float], None],
    parent: Mapping[str, Any] | None = None,
    root: bool = False,
) -> Iterator[None]:
    """An operation observed both ways: a span around the block and its duration recorded.

    When the block ends normally, `outcome()` names what it came to: the span gets that
    attribute (key, value) and an error status when the third item says it failed. `record`
    gets the seconds the block took however it ended (an exception included), for the metrics.
    """
    started = time.perf_counter()
    try:
        with span(
            service, name, kind=kind, parent=parent, root=root, attributes=attributes
        ) as current:
            yield
            if current is not None:
                key, value, failed = outcome()
                current.set_attribute(key, value)
                if failed:
                    current.set_status(Status(StatusCode.ERROR, str(value)))
    finally:
        record(time.perf_counter() - started)


@contextlib.contextmanager
def publishing(service: str, event: Event[Any], entry: Mapping[str, Any]) -> Iterator[None]:
    """Publishing an outbox entry: a producer span in the trace of the write that stored it
    (its context goes into the message's headers). Without a stored context, none."""
    stored = entry.get(TRACE_FIELD)
    if service not in _tracers or not isinstance(stored, Mapping):
        yield
        return
    with span(
        service,
        f"publish {event.subject.wire}",
        kind=SpanKind.PRODUCER,
        parent=stored,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": event.subject.wire,
            **event_attributes(event),
        },
    ):
        yield


@contextlib.contextmanager
def continued(
    service: str, stored: Mapping[str, Any] | None, name: str, attributes: Mapping[str, Any]
) -> Iterator[None]:
    """Work on a record that carries its trace (an order): a span in that trace, linked to the
    current one (the request that asked for it), which gets the same attributes."""
    if service not in _tracers:
        yield
        return
    annotate(attributes)
    current = trace.get_current_span().get_span_context()
    links = [Link(current)] if current.is_valid else []
    with span(service, name, parent=stored, attributes=attributes, links=links):
        yield


class TraceContextFilter(logging.Filter):
    """Puts the current span's `trace_id` and `span_id` on every log record that has one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _tracers:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
                record.span_id = format(context.span_id, "016x")
        return True
