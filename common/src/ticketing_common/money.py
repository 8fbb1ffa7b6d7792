"""Money: dollars as the API and the events speak them, integer cents as stored and charged.

One policy everywhere (flaw 5: prices with cents gave Stripe non-integer amounts): an amount is
exact to the cent or it is refused; nothing is ever rounded. Conversion goes through the
decimal text of the number, because 19.99 as a float is 19.98999...; its text is exact.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = [
    "CENT",
    "MoneyError",
    "to_cents",
    "to_decimal",
    "to_dollars",
]

CENT = Decimal("0.01")


class MoneyError(ValueError):
    """Not an amount of money: not a number, not finite, or a fraction of a cent."""


def to_decimal(dollars: Decimal | float | int | str) -> Decimal:
    """Dollars as an exact Decimal with two places: 19.99 -> Decimal("19.99")."""
    if isinstance(dollars, bool):
        raise MoneyError(f"{dollars!r} is not an amount")
    try:
        amount = Decimal(str(dollars).strip())
    except InvalidOperation:
        raise MoneyError(f"{dollars!r} is not an amount") from None
    if not amount.is_finite():
        raise MoneyError(f"{dollars!r} is not a finite amount")
    try:
        cents = amount.quantize(CENT)
    except InvalidOperation:
        # More digits than the decimal context holds (1e400): no price is that large.
        raise MoneyError(f"{dollars!r} is too large an amount") from None
    if amount != cents:
        raise MoneyError(f"{dollars!r} is not a whole number of cents")
    return cents


def to_cents(dollars: Decimal | float | int | str) -> int:
    """Dollars to integer cents, exactly: 19.99 -> 1999."""
    return int(to_decimal(dollars) * 100)


def to_dollars(cents: int) -> float:
    """Integer cents to the dollars of a JSON body or an event: 1999 -> 19.99."""
    # Exact as text: the float nearest to n/100 prints as n/100 with at most two decimals.
    return float(Decimal(cents) / 100)
