"""The timeline of one order, from span records as the JSON lines exporter writes them."""

import json
from pathlib import Path
from typing import Any

import pytest

from ticketing_devstack import timeline

MS = 1_000_000
BASE = 1_700_000_000 * 1_000_000_000  # unix ns


def span(
    name: str,
    span_id: str,
    parent: str | None,
    start_ms: float,
    end_ms: float,
    *,
    trace: str = "a" * 32,
    service: str = "orders",
    **attributes: Any,
) -> dict[str, Any]:
    return {
        "traceId": trace,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": "INTERNAL",
        "service": service,
        "start": BASE + int(start_ms * MS),
        "end": BASE + int(end_ms * MS),
        "status": "UNSET",
        "attributes": attributes,
        "links": [],
    }


SPANS = [
    span("POST /api/orders", "s1", None, 0, 10, **{"order.id": "o1"}),
    span("publish order.created", "s2", "s1", 12, 13),
    span("handle order.created", "s4", "s2", 15, 30, service="payments"),
    span("handle order.created", "s3", "s2", 14, 20, service="tickets"),
    span("POST /api/orders", "x1", None, 5, 9, trace="b" * 32, **{"order.id": "o2"}),
    span(
        "<pay & go>", "p1", None, 40, 50, trace="c" * 32, service="payments", **{"order.id": "o1"}
    ),
]


def write(folder: Path, spans: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(s) for s in spans] + ["{cut short"]
    (folder / "orders.jsonl").write_text("\n".join(lines) + "\n")


def test_the_story_is_every_trace_that_tells_of_the_order(tmp_path: Path) -> None:
    write(tmp_path, SPANS)
    spans = timeline.load_spans(tmp_path)
    assert len(spans) == len(SPANS)  # the broken line is skipped
    assert {s["spanId"] for s in timeline.story(spans, "o1")} == {"s1", "s2", "s3", "s4", "p1"}


def test_steps_follow_their_parents_with_offsets_and_durations() -> None:
    steps = timeline.steps(timeline.story(SPANS, "o1"))  # type: ignore[arg-type]
    assert [(s.span["spanId"], s.depth) for s in steps] == [
        ("s1", 0),
        ("s2", 1),
        ("s3", 2),  # children by start time
        ("s4", 2),
        ("p1", 0),
    ]
    assert [s.offset_ms for s in steps] == [0, 12, 14, 15, 40]
    assert [s.duration_ms for s in steps] == [10, 1, 6, 15, 10]


def test_the_table_and_the_waterfall() -> None:
    steps = timeline.steps(timeline.story(SPANS, "o1"))  # type: ignore[arg-type]
    lines = timeline.table(steps).splitlines()
    assert lines[1].split() == ["0.0ms", "10.0ms", "orders", "aaaaaaaa", "POST", "/api/orders"]
    assert lines[3].endswith("    handle order.created")
    assert lines[-1].startswith("5 steps in 2 trace(s)")
    svg = timeline.svg(steps, "order o1")
    assert svg.startswith("<svg")
    assert "&lt;pay &amp; go&gt;" in svg
    assert svg.count("<rect") == 1 + len(steps)  # the background and a bar per step


def test_the_command_prints_and_writes_next_to_the_spans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, SPANS)
    assert timeline.main(["o1", "--traces", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("order o1\n")
    assert f"waterfall: {tmp_path / 'order-o1.svg'}" in out
    assert (tmp_path / "order-o1.svg").read_text().startswith("<svg")
    assert timeline.main(["nobody", "--traces", str(tmp_path)]) == 1
    assert "no spans of order nobody" in capsys.readouterr().err
