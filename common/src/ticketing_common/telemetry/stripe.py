"""Calls to Stripe, observed: a client span and the request metrics per HTTP request (each
network attempt of the SDK's retries is one), by operation and outcome.

The operation is the method and the path with its ids as `{id}` (`POST
/v1/payment_intents/{id}/confirm`), so the labels stay few. Outcomes: `ok` (2xx), `declined`
(402: the card), `refused` (another 4xx), `error` (5xx), `unreachable` (no answer).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind

from ticketing_common.telemetry import metrics, tracing

__all__ = [
    "StripeCall",
    "observe_stripe",
    "operation",
    "outcome_of",
]

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

    def record(seconds: float) -> None:
        metrics.STRIPE_DURATION.labels(service, op).observe(seconds)
        metrics.STRIPE_REQUESTS.labels(service, op, outcome_of(call.status)).inc()

    with tracing.measured(
        service,
        f"stripe {op}",
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": method.upper(), "peer.service": "stripe"},
        outcome=lambda: (
            "http.response.status_code",
            call.status or 0,
            outcome_of(call.status) in ("error", "unreachable"),
        ),
        record=record,
    ):
        yield call
