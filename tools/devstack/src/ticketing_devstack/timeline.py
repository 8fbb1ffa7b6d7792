"""An order's story from the local spans: `make trace ORDER=<id>`
(`python -m ticketing_devstack.timeline <order id>`).

Under `make up` every service writes its spans as JSON lines under `.devstack/traces/`
(`ticketing_common.telemetry.jsonlines`). This finds the traces that tell of the order (those
with a span carrying its `order.id`: the request that created it, every event about it and its
handlers, the expiry job, the payment), prints them as one timeline (each step, its service,
the time since the first request and its duration, indented under its parent) and writes the
same as an SVG waterfall next to the spans (`order-<id>.svg`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict
from xml.sax.saxutils import escape

ORDER_ID = "order.id"


class SpanRecord(TypedDict):
    """One span as `JsonLinesExporter` writes it."""

    traceId: str
    spanId: str
    parentSpanId: str | None
    name: str
    kind: str
    service: str
    start: int  # unix ns
    end: int
    status: str
    attributes: dict[str, Any]
    links: list[dict[str, str]]


@dataclass(frozen=True)
class Step:
    span: SpanRecord
    depth: int
    offset_ms: float  # since the story's first span started
    duration_ms: float


def load_spans(folder: Path) -> list[SpanRecord]:
    """Every span in the folder's `*.jsonl` files (a line cut short by a crash is skipped)."""
    spans: list[SpanRecord] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and {"traceId", "spanId", "start", "end"} <= set(record):
                spans.append(record)  # type: ignore[arg-type]  # checked above: a span record
    return spans


def story(spans: Iterable[SpanRecord], order_id: str) -> list[SpanRecord]:
    """The spans of every trace that tells of the order, oldest first."""
    spans = list(spans)
    traces = {s["traceId"] for s in spans if s["attributes"].get(ORDER_ID) == order_id}
    return sorted((s for s in spans if s["traceId"] in traces), key=lambda s: s["start"])


def steps(spans: list[SpanRecord]) -> list[Step]:
    """The spans as a timeline: each after its parent (children by start), indented under it."""
    if not spans:
        return []
    ids = {s["spanId"] for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        parent = s["parentSpanId"] if s["parentSpanId"] in ids else None
        children.setdefault(parent, []).append(s)
    origin = min(s["start"] for s in spans)
    out: list[Step] = []

    def visit(span: SpanRecord, depth: int) -> None:
        out.append(
            Step(
                span=span,
                depth=depth,
                offset_ms=(span["start"] - origin) / 1e6,
                duration_ms=(span["end"] - span["start"]) / 1e6,
            )
        )
        for child in sorted(children.get(span["spanId"], []), key=lambda c: c["start"]):
            visit(child, depth + 1)

    for root in sorted(children.get(None, []), key=lambda r: r["start"]):
        visit(root, 0)
    return out


def table(timeline: list[Step]) -> str:
    """The timeline as text: one line per step."""
    traces = list(dict.fromkeys(step.span["traceId"] for step in timeline))
    lines = [f"{'since start':>12}  {'duration':>10}  {'service':<11} {'trace':<8} step"]
    for step in timeline:
        span = step.span
        mark = " !" if span["status"] == "ERROR" else ""
        lines.append(
            f"{step.offset_ms:>10.1f}ms  {step.duration_ms:>8.1f}ms  {span['service']:<11} "
            f"{span['traceId'][:8]:<8} {'  ' * step.depth}{span['name']}{mark}"
        )
    lines.append(f"{len(timeline)} steps in {len(traces)} trace(s): {', '.join(traces)}")
    return "\n".join(lines)


COLOURS = {
    "auth": "#8c564b",
    "tickets": "#1f77b4",
    "orders": "#ff7f0e",
    "payments": "#2ca02c",
    "expiration": "#9467bd",
}
ROW, LABEL, CHART, PAD = 22, 420, 640, 10


def svg(timeline: list[Step], title: str) -> str:
    """The timeline as an SVG waterfall: a bar per step on a common time axis."""
    total = max((s.offset_ms + s.duration_ms for s in timeline), default=1.0) or 1.0
    height = PAD * 2 + ROW * (len(timeline) + 2)
    width = LABEL + CHART + PAD * 2
    scale = CHART / total
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{PAD}" y="{PAD + 14}" font-weight="bold">{escape(title)}</text>',
        f'<text x="{LABEL + PAD}" y="{PAD + 14}" fill="#555">0 ms</text>',
        f'<text x="{width - PAD}" y="{PAD + 14}" fill="#555" text-anchor="end">'
        f"{total:.0f} ms</text>",
    ]
    for i, step in enumerate(timeline):
        span = step.span
        y = PAD + ROW * (i + 1) + 6
        colour = COLOURS.get(span["service"], "#7f7f7f")
        x = LABEL + PAD + step.offset_ms * scale
        bar = max(step.duration_ms * scale, 1.0)
        label = f"{'  ' * step.depth}{span['service']}: {span['name']}"
        stroke = ' stroke="#d62728" stroke-width="2"' if span["status"] == "ERROR" else ""
        tip = f"{span['name']}: {step.duration_ms:.1f} ms at +{step.offset_ms:.1f} ms"
        fits = x + bar < width - 80
        note_x, anchor = (x + bar + 4, "") if fits else (x - 4, ' text-anchor="end"')
        out += [
            f'<text x="{PAD}" y="{y + 14}" xml:space="preserve">{escape(label)}</text>',
            f'<rect x="{x:.1f}" y="{y + 3}" width="{bar:.1f}" height="{ROW - 6}" '
            f'fill="{colour}"{stroke}><title>{escape(tip)}</title></rect>',
            # Its duration beside it: right of the bar, or left of it near the end of the axis.
            f'<text x="{note_x:.1f}" y="{y + 14}" fill="#555" font-size="10"{anchor}>'
            f"{step.duration_ms:.1f} ms</text>",
        ]
    out.append("</svg>")
    return "\n".join(out) + "\n"


def default_folder() -> Path:
    return Path(os.environ.get("TICKETING_DATA", ".devstack")) / "traces"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ticketing_devstack.timeline", description="An order's story."
    )
    parser.add_argument("order_id")
    parser.add_argument("--traces", type=Path, default=None, help="the spans' folder")
    parser.add_argument("--svg", type=Path, default=None, help="where the waterfall goes")
    args = parser.parse_args(argv)
    folder: Path = args.traces or default_folder()
    timeline = steps(story(load_spans(folder), args.order_id))
    if not timeline:
        print(f"no spans of order {args.order_id} under {folder}", file=sys.stderr)
        return 1
    print(f"order {args.order_id}")
    print(table(timeline))
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", args.order_id)
    target: Path = args.svg or folder / f"order-{safe}.svg"
    target.write_text(svg(timeline, f"order {args.order_id}"))
    print(f"waterfall: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
