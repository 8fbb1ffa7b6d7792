"""The not-sampled short cut: a span that is not sampled, made without the SDK.

A span that is not sampled records nothing, but the SDK still runs its whole machinery for one
(its sampler, id generator, self-metrics, `use_span`), on every request with no trace kept.
`not_sampled` makes the same span, with the same ids and flags, for the cost of two random
numbers and a context switch; `tracing.span` asks it first and leaves to the SDK only the spans
that are kept.

Why this fast path exists, with its measurements:
BENCHMARKS.md, "Why the fast paths exist: the not-sampled short cut".
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

_IDS = RandomIdGenerator()
# A span that is not sampled, as the SDK flags one: its trace id is random (W3C level 2).
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)


def not_sampled(
    service: str, context: otel_context.Context | None, kept: Mapping[str, int]
) -> Span | None:
    """The span to make under `context` (None: the current one) if it is not sampled, made
    here; None if it is, for the SDK to make.

    `kept`: per service, the bound under which a new trace id's low 64 bits are kept
    (TraceIdRatioBased's rule, from the share OTEL_TRACES_SAMPLER_ARG), as `tracing` keeps it.
    """
    parent = trace.get_current_span(context).get_span_context()
    if parent.is_valid:
        if parent.trace_flags.sampled:
            return None
        # ParentBased: the child of a span not sampled is not sampled either.
        trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
    else:
        # TraceIdRatioBased's rule, on a trace id of our own.
        trace_id = _IDS.generate_trace_id()
        if trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < kept[service]:
            return None  # a new trace kept: the SDK's sampler keeps what has no parent
        flags, state = _NOT_SAMPLED, None
    span_context = SpanContext(
        trace_id, _IDS.generate_span_id(), is_remote=False, trace_flags=flags, trace_state=state
    )
    return NonRecordingSpan(span_context)
