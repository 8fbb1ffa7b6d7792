"""Stripe's error answers: the `{"error": {...}}` body, and a request refused before it runs."""

from __future__ import annotations

from typing import Any

# A Stripe object or answer as the fake keeps and sends it: Stripe's JSON, as it is.
Json = dict[str, Any]


def stripe_error(kind: str, message: str, **extra: Any) -> Json:
    """Stripe's error body: `kind` is its `type` (`invalid_request_error`, `card_error`, ...)."""
    return {"error": {"type": kind, "message": message, **extra}}


def no_such(kind: str, object_id: str, *, param: str) -> Json:
    """Stripe's 404 body for an unknown id."""
    message = f"No such {kind}: '{object_id}'"
    return stripe_error("invalid_request_error", message, code="resource_missing", param=param)


class Rejected(Exception):
    """A request Stripe refuses before doing anything: 400 unless told otherwise."""

    def __init__(self, message: str, param: str | None, *, status: int = 400, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body = stripe_error("invalid_request_error", message, param=param, **extra)
