"""HTTP requests, observed: a server span each (child of a `traceparent` header) and the
request metrics by route template, method and status.

A plain ASGI middleware outside all but the proxy headers, so a refused body (413) or an
unhandled error (500) is counted too. `/metrics` itself is neither traced nor counted, and
health probes are counted but not traced (a span every few seconds per probe would bury the
orders' traces).
"""

from __future__ import annotations

import time

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Receive, Scope, Send

from ticketing_common.asgi import HttpMiddleware, TrackedSend
from ticketing_common.telemetry import metrics, tracing

__all__ = [
    "METRICS_PATH",
    "NOT_TRACED",
    "HttpTelemetry",
    "route_of",
]

NOT_TRACED = frozenset({"/healthz", "/readyz"})
METRICS_PATH = "/metrics"
# The route label of a request that matched no route (a 404): never the raw path, which would
# make a label value per URL.
UNMATCHED = "unmatched"
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def route_of(scope: Scope) -> str:
    """The template of the route that served the request (`/api/orders/{order_id}`)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class HttpTelemetry(HttpMiddleware):
    def __init__(self, app: ASGIApp, *, service: str) -> None:
        super().__init__(app)
        self.service = service

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        answer = TrackedSend(send)
        started = time.perf_counter()
        try:
            if scope["path"] in NOT_TRACED or tracing.tracer(self.service) is None:
                await self.app(scope, receive, answer)
            else:
                await self._traced(scope, receive, answer, method)
        finally:
            route = route_of(scope)
            metrics.HTTP_DURATION.labels(self.service, method, route).observe(
                time.perf_counter() - started
            )
            metrics.HTTP_REQUESTS.labels(self.service, method, route, str(answer.status)).inc()

    async def _traced(
        self, scope: Scope, receive: Receive, answer: TrackedSend, method: str
    ) -> None:
        incoming = {
            name.decode(): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _TRACE_HEADERS
        }
        with tracing.span(
            self.service,
            method,
            kind=SpanKind.SERVER,
            parent=incoming,
            root=True,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:
            try:
                await self.app(scope, receive, answer)
            finally:
                if span is not None:
                    route = route_of(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", answer.status)
                    if answer.status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
