"""Money as integer cents: what the database stores and what Stripe charges (flaw 5)."""

from __future__ import annotations

from decimal import Decimal


def to_cents(dollars: Decimal | float | str) -> int:
    """Dollars to integer cents, exactly: 19.99 -> 1999; a fraction of a cent is an error."""
    # str() first: Decimal(19.99) is 19.989999..., Decimal("19.99") is exact.
    cents = Decimal(str(dollars)) * 100
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise ValueError(f"{dollars!r} is not a whole number of cents")
    return int(cents)
