"""What the templates show: money, time left, statuses, safe redirects, the home page's cursor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
# How many earlier pages the home page remembers for its Previous link.
MAX_TRAIL = 50


def money(amount: Any) -> str:
    """19.9 -> "$19.90"; anything that is not a number is shown as it is."""
    try:
        value = Decimal(str(amount)).quantize(CENT)
    except (InvalidOperation, ValueError):
        return str(amount)
    return f"${value:,.2f}"


def normalise_price(text: str) -> tuple[str | None, str | None]:
    """The price as typed -> (JSON number with two decimals, None), or (None, the field's
    message) when it is not an amount of dollars and cents. "20" -> "20.00"; "$1,250.5" ->
    "1250.50"."""
    cleaned = text.strip().replace(",", "").removeprefix("$").strip()
    if not cleaned:
        return None, "Price is required"
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None, "Price must be a number, like 19.99"
    if not value.is_finite():
        return None, "Price must be a number, like 19.99"
    try:
        cents = value.quantize(CENT)
    except InvalidOperation:  # more digits than a Decimal holds: no price is that large
        return None, "Price is too large"
    if cents != value:
        return None, "Price must be in dollars and cents, like 19.99"
    return f"{cents:f}", None


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds_left(expires_at: Any, now: datetime | None = None) -> int:
    moment = parse_time(expires_at)
    if moment is None:
        return 0
    left = (moment - (now or datetime.now(UTC))).total_seconds()
    return max(0, int(left + 0.999))


def clock(seconds: int) -> str:
    """125 -> "2:05"; an hour or more -> "1:02:05"."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class OrderView:
    """An order as a page shows it."""

    order: dict[str, Any]
    seconds_left: int

    @property
    def status(self) -> str:
        return str(self.order.get("status", ""))

    @property
    def open(self) -> bool:
        """Awaiting payment and still in time."""
        return self.status in ("created", "awaiting:payment") and self.seconds_left > 0

    @property
    def expired(self) -> bool:
        return self.status in ("created", "awaiting:payment") and self.seconds_left <= 0

    @property
    def badge(self) -> tuple[str, str]:
        """(label, css modifier)."""
        if self.status == "complete":
            return "Complete", "complete"
        if self.status == "cancelled":
            return "Cancelled", "cancelled"
        if self.expired:
            return "Expired", "cancelled"
        return "Awaiting payment", "open"


def order_view(order: dict[str, Any], now: datetime | None = None) -> OrderView:
    return OrderView(order, seconds_left(order.get("expiresAt"), now))


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site (never `//host` or a scheme) is followed after signing in."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


@dataclass(frozen=True)
class Cursor:
    """The home page's position: `before` the API cursor, `trail` the cursors of the pages
    before it (so Previous needs no cursor the API does not have)."""

    before: str | None
    trail: tuple[str, ...]

    @classmethod
    def parse(cls, before: str | None, trail: str | None) -> Cursor | None:
        """None when the query is not one this site wrote."""
        ids = tuple(t for t in (trail or "").split(",") if t)
        if before is not None and not OBJECT_ID.fullmatch(before):
            return None
        if len(ids) > MAX_TRAIL or not all(OBJECT_ID.fullmatch(t) for t in ids):
            return None
        if before is None and ids:
            return None
        return cls(before, ids)

    def next_href(self, last_id: str) -> str:
        trail = (*self.trail, self.before) if self.before else self.trail
        trail = trail[-MAX_TRAIL:]
        query = f"/?before={last_id}"
        return query + (f"&trail={','.join(trail)}" if trail else "")

    def previous_href(self) -> str | None:
        if self.before is None:
            return None
        if not self.trail:
            return "/"
        rest = self.trail[:-1]
        return f"/?before={self.trail[-1]}" + (f"&trail={','.join(rest)}" if rest else "")
