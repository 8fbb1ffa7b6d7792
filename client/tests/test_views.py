from datetime import UTC, datetime, timedelta

import pytest

from ticketing_client.views import Cursor, clock, money, normalise_price, order_view, safe_next


@pytest.mark.parametrize(
    ("typed", "sent"),
    [("20", "20.00"), ("19.9", "19.90"), (" $1,250.5 ", "1250.50"), ("0", "0.00")],
)
def test_prices_are_normalised_to_two_decimals(typed: str, sent: str) -> None:
    assert normalise_price(typed) == (sent, None)


@pytest.mark.parametrize("typed", ["", "abc", "1.999", "NaN", "Infinity", "1e400000"])
def test_what_is_not_dollars_and_cents_is_refused(typed: str) -> None:
    price, message = normalise_price(typed)
    assert price is None
    assert message


def test_money_and_clock() -> None:
    assert money(19.9) == "$19.90"
    assert money(1250) == "$1,250.00"
    assert clock(0) == "0:00"
    assert clock(125) == "2:05"
    assert clock(3725) == "1:02:05"


def test_an_order_past_its_time_is_expired() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    soon = (now + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    assert order_view({"status": "created", "expiresAt": soon}, now).badge[0] == (
        "Awaiting payment"
    )
    assert order_view({"status": "created", "expiresAt": soon}, now).seconds_left == 90
    later = now + timedelta(seconds=91)
    view = order_view({"status": "created", "expiresAt": soon}, later)
    assert view.expired
    assert view.badge == ("Expired", "cancelled")
    assert order_view({"status": "complete", "expiresAt": soon}, later).badge[0] == "Complete"


def test_only_local_paths_are_followed() -> None:
    assert safe_next("/orders") == "/orders"
    for bad in ("//evil.test", "https://evil.test", "/\\evil.test", None, ""):
        assert safe_next(bad) == "/"


def test_the_cursor_trail() -> None:
    a, b = "a" * 24, "b" * 24
    assert Cursor.parse(None, None) == Cursor(None, ())
    assert Cursor.parse("x", None) is None
    assert Cursor.parse(None, a) is None
    first = Cursor(None, ())
    assert first.previous_href() is None
    assert first.next_href(a) == f"/?before={a}"
    second = Cursor(a, ())
    assert second.previous_href() == "/"
    assert second.next_href(b) == f"/?before={b}&trail={a}"
    assert Cursor(b, (a,)).previous_href() == f"/?before={a}"
