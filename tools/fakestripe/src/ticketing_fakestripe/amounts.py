"""Amounts (in cents) read from a request's parameters, refused as Stripe refuses them."""

from __future__ import annotations

from collections.abc import Callable

from ticketing_fakestripe.errors import Json, Rejected


def _integer(raw: object, name: str, message: str) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise Rejected(message, name) from None


def required_amount(params: Json) -> int:
    """The request's `amount`, which it must give."""
    return _integer(params.get("amount", ""), "amount", "Missing required param: amount.")


def part_of(params: Json, name: str, *, left: int, too_large: Callable[[int], str]) -> int:
    """The optional amount `name` (cents) out of `left`, all of it when absent."""
    raw = params.get(name)
    if raw is None:
        return left
    amount = _integer(raw, name, f"Invalid integer: {raw}")
    if amount <= 0:
        raise Rejected("Invalid positive integer", name)
    if amount > left:
        raise Rejected(too_large(amount), name, code="amount_too_large")
    return amount
