"""Calls to Stripe, observed: a client span and the request metrics per HTTP request (each
network attempt of the SDK's retries is one), by operation and outcome.

The operation is the method and the path with its ids as `{id}` (`POST
/v1/payment_intents/{id}/confirm`), so the labels stay few. Outcomes: `ok` (2xx), `declined`
(402: the card), `refused` (another 4xx), `error` (5xx), `unreachable` (no answer).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind, Status, StatusCode

from ticketing_common.telemetry import metrics, tracing

# A Stripe object id in a path: `pi_3Mt...`, `ch_...`, `re_...`.
_ID = re.compile(r"^[a-z]{2,6}_[A-Za-z0-9]+$")


def operation(method: str, url: str) -> str:
    path = "/".join("{id}" if _ID.match(part) else part for part in urlsplit(url).path.split("/"))
    return f"{method.upper()} {path}"


def outcome_of(status: int | None) -> str:
    if status is None:
        return "unreachable"
    if status < 400:
        return "ok"
    if status == 402:
        return "declined"
    return "refused" if status < 500 else "error"


@dataclass
class StripeCall:
    """A request being made: the caller sets `status` from the answer."""

    status: int | None = None


@contextlib.contextmanager
def observe_stripe(service: str, method: str, url: str) -> Iterator[StripeCall]:
    op = operation(method, url)
    call = StripeCall()
    started = time.perf_counter()
    try:
        with tracing.span(
            service,
            f"stripe {op}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method.upper(), "peer.service": "stripe"},
        ) as span:
            yield call
            if span is not None:
                span.set_attribute("http.response.status_code", call.status or 0)
                if outcome_of(call.status) in ("error", "unreachable"):
                    span.set_status(Status(StatusCode.ERROR))
    finally:
        metrics.STRIPE_DURATION.labels(service, op).observe(time.perf_counter() - started)
        metrics.STRIPE_REQUESTS.labels(service, op, outcome_of(call.status)).inc()
