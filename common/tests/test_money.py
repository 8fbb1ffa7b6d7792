from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketing_common.money import MoneyError, to_cents, to_decimal, to_dollars


@pytest.mark.parametrize(
    ("dollars", "cents"),
    [
        (19.99, 1999),
        ("19.99", 1999),
        (Decimal("0.1"), 10),
        (20, 2000),
        ("0.29", 29),
        (1.005e2, 10050),
    ],
)
def test_dollars_to_cents_is_exact(dollars: object, cents: int) -> None:
    assert to_cents(dollars) == cents  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [19.999, "1.234", "abc", "NaN", "Infinity", float("inf"), True, "", "1e400", 10**30]
)
def test_anything_but_whole_cents_is_refused(bad: object) -> None:
    with pytest.raises(MoneyError):
        to_cents(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**11))
def test_cents_survive_a_round_trip_through_the_float_of_a_json_body(cents: int) -> None:
    assert to_cents(to_dollars(cents)) == cents
    assert to_decimal(to_dollars(cents)) == Decimal(cents) / 100
