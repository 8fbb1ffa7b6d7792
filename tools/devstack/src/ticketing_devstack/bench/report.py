"""The pure parts of `make bench`: percentiles, the figures, the table, results.json."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between the closest ranks (as
    numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Figure:
    """One line of the table: a measured value, the baseline measured in the same run, the
    target and whether it is met (None: no target, reported only)."""

    name: str
    value: str
    baseline: str = "-"
    target: str = "-"
    passed: bool | None = None
    # The numbers behind `value` and `baseline`, for results.json.
    data: dict[str, Any] | None = None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "-"}[self.passed]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


HEADERS = ("figure", "value", "baseline", "target", "result")


def table(figures: Sequence[Figure]) -> str:
    """The figures as one plain-text table, also valid Markdown."""
    rows = [HEADERS, *((f.name, f.value, f.baseline, f.target, f.verdict) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])])


def ms(seconds: float) -> str:
    """Seconds as milliseconds for the table: `12.3 ms`."""
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def per_second(value: float) -> str:
    return f"{value:,.0f}/s" if value >= 100 else f"{value:,.1f}/s"
