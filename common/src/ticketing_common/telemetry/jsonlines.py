"""A span exporter that appends each span as one JSON object per line to a file.

What the local stack keeps (`.devstack/traces/<service>.jsonl`) and `make trace ORDER=<id>`
reads. One line per span:

    {"traceId": "<32 hex>", "spanId": "<16 hex>", "parentSpanId": "<16 hex>" | null,
     "name": "POST /api/orders", "kind": "SERVER", "service": "orders",
     "start": <unix ns>, "end": <unix ns>, "status": "UNSET" | "OK" | "ERROR",
     "attributes": {...}, "links": [{"traceId": ..., "spanId": ...}]}

A batch is written with one `write` on a file opened for appending, so the processes of one
service (two orders, or each expiry job of the worker) never interleave within a line.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

__all__ = [
    "JsonLinesExporter",
]

# Enum members' `.name` is a property lookup each time: named once here.
_KINDS = {kind: kind.name for kind in SpanKind}
_STATUSES = {code: code.name for code in StatusCode}
# One encoder for every line (json.dumps builds one per call); spans are never circular.
_ENCODER = json.JSONEncoder(default=str, check_circular=False)


def _span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as its JSON line holds it."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "traceId": f"{context.trace_id:032x}" if context else "",
        "spanId": f"{context.span_id:016x}" if context else "",
        "parentSpanId": f"{parent.span_id:016x}" if parent is not None else None,
        "name": span.name,
        "kind": _KINDS[span.kind],
        "service": str(span.resource.attributes.get("service.name", "")),
        "start": span.start_time,
        "end": span.end_time,
        "status": _STATUSES[span.status.status_code],
        "attributes": dict(span.attributes or {}),
        "links": [
            {"traceId": f"{link.context.trace_id:032x}", "spanId": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        text = "".join(_ENCODER.encode(_span_record(s)) + "\n" for s in spans)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
