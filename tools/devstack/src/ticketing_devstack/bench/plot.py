"""The propagation CDF as a hand-written SVG (no plotting dependency): one line per buyer count,
milliseconds on a log scale."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 40, 60
COLOURS = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Axes:
    """Milliseconds from `low` to `high` (whole decades) across, the fraction of orders up."""

    low: float
    high: float

    @classmethod
    def fitting(cls, samples: Sequence[float]) -> Axes:
        low = 10 ** math.floor(math.log10(max(min((v for v in samples if v > 0), default=1), 0.1)))
        high = 10 ** math.ceil(math.log10(max(max(samples, default=10), low * 10)))
        return cls(low, high)

    def x(self, ms: float) -> float:
        ms = min(max(ms, self.low), self.high)
        span = math.log10(self.high / self.low)
        return LEFT + PLOT_W * (math.log10(ms) - math.log10(self.low)) / span

    @staticmethod
    def y(fraction: float) -> float:
        return TOP + PLOT_H * (1 - fraction)


def cdf_svg(series: Mapping[str, Sequence[float]], title: str) -> str:
    """`series`: label -> samples in milliseconds."""
    axes = Axes.fitting([v for values in series.values() for v in values])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
        *_milliseconds_grid(axes),
        *_fraction_grid(axes),
        *_frame(),
    ]
    for i, (label, values) in enumerate(series.items()):
        out += _series(axes, i, label, values)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _milliseconds_grid(axes: Axes) -> list[str]:
    """A line at each step of each decade (darker at the decade), the decades labelled."""
    out = []
    decade = axes.low
    while decade <= axes.high * 1.0001:
        for step in range(1, 10):
            value = decade * step
            if value > axes.high * 1.0001:
                break
            gx = axes.x(value)
            shade = "#bbb" if step == 1 else "#eee"
            out.append(
                f'<line x1="{gx:.1f}" y1="{TOP}" x2="{gx:.1f}" y2="{TOP + PLOT_H}" '
                f'stroke="{shade}"/>'
            )
        label = f"{decade:g}"
        out.append(
            f'<text x="{axes.x(decade):.1f}" y="{TOP + PLOT_H + 18}" text-anchor="middle">'
            f"{label}</text>"
        )
        decade *= 10
    return out


def _fraction_grid(axes: Axes) -> list[str]:
    out = []
    for tick in range(0, 11, 2):
        gy = axes.y(tick / 10)
        out.append(
            f'<line x1="{LEFT}" y1="{gy:.1f}" x2="{LEFT + PLOT_W}" y2="{gy:.1f}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{LEFT - 8}" y="{gy + 4:.1f}" text-anchor="end">{tick / 10:.1f}</text>'
        )
    return out


def _frame() -> list[str]:
    return [
        f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" '
        'fill="none" stroke="#333"/>',
        f'<text x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
        "order 201 until ticket:updated (reserved) on the bus, ms (log scale)</text>",
        f'<text x="18" y="{TOP + PLOT_H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {TOP + PLOT_H / 2})">fraction of orders</text>',
    ]


def _series(axes: Axes, i: int, label: str, values: Sequence[float]) -> list[str]:
    """One series' steps (none for no samples) and its line in the legend."""
    out = []
    colour = COLOURS[i % len(COLOURS)]
    ordered = sorted(values)
    if ordered:
        n = len(ordered)
        points = " ".join(
            f"{axes.x(v):.1f},{axes.y(j / n):.1f} {axes.x(v):.1f},{axes.y((j + 1) / n):.1f}"
            for j, v in enumerate(ordered)
        )
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    ly = TOP + 20 + 22 * i
    out.append(
        f'<line x1="{LEFT + PLOT_W + 15}" y1="{ly}" x2="{LEFT + PLOT_W + 40}" y2="{ly}" '
        f'stroke="{colour}" stroke-width="2"/>'
    )
    out.append(f'<text x="{LEFT + PLOT_W + 46}" y="{ly + 4}">{escape(label)}</text>')
    return out
