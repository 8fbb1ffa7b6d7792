"""The propagation CDF as a hand-written SVG (no plotting dependency): one line per buyer count,
milliseconds on a log scale."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 40, 60
COLOURS = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")


def cdf_svg(series: Mapping[str, Sequence[float]], title: str) -> str:
    """`series`: label -> samples in milliseconds."""
    samples = [v for values in series.values() for v in values]
    low = 10 ** math.floor(math.log10(max(min((v for v in samples if v > 0), default=1), 0.1)))
    high = 10 ** math.ceil(math.log10(max(max(samples, default=10), low * 10)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ms: float) -> float:
        ms = min(max(ms, low), high)
        return LEFT + plot_w * (math.log10(ms) - math.log10(low)) / math.log10(high / low)

    def y(fraction: float) -> float:
        return TOP + plot_h * (1 - fraction)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    decade = low
    while decade <= high * 1.0001:
        for step in range(1, 10):
            value = decade * step
            if value > high * 1.0001:
                break
            gx = x(value)
            shade = "#bbb" if step == 1 else "#eee"
            out.append(
                f'<line x1="{gx:.1f}" y1="{TOP}" x2="{gx:.1f}" y2="{TOP + plot_h}" '
                f'stroke="{shade}"/>'
            )
        label = f"{decade:g}"
        out.append(
            f'<text x="{x(decade):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{label}</text>'
        )
        decade *= 10
    for tick in range(0, 11, 2):
        gy = y(tick / 10)
        out.append(
            f'<line x1="{LEFT}" y1="{gy:.1f}" x2="{LEFT + plot_w}" y2="{gy:.1f}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{LEFT - 8}" y="{gy + 4:.1f}" text-anchor="end">{tick / 10:.1f}</text>'
        )
    out += [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#333"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
        "order 201 until ticket:updated (reserved) on the bus, ms (log scale)</text>",
        f'<text x="18" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {TOP + plot_h / 2})">fraction of orders</text>',
    ]
    for i, (label, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        ordered = sorted(values)
        if ordered:
            n = len(ordered)
            points = " ".join(
                f"{x(v):.1f},{y(j / n):.1f} {x(v):.1f},{y((j + 1) / n):.1f}"
                for j, v in enumerate(ordered)
            )
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        ly = TOP + 20 + 22 * i
        out.append(
            f'<line x1="{LEFT + plot_w + 15}" y1="{ly}" x2="{LEFT + plot_w + 40}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{LEFT + plot_w + 46}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
