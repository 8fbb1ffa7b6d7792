"""`make bench`'s driver and the figures' table lines, without a stack: the options, the order
of the steps, results.json's keys and the targets BENCHMARKS.md's tables and the issues' A/B
runs read (`BENCH_ARGS` and results.json must mean what they meant)."""

import argparse
import json
from pathlib import Path

from ticketing_devstack.bench.buying import Bought
from ticketing_devstack.bench.figures import purchase
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.machine import machine
from ticketing_devstack.bench.report import Figure
from ticketing_devstack.bench.run import FIGURES, parse_args, steps, write_results


def harness(args: argparse.Namespace) -> Harness:
    """A harness with no stack behind it: for the figures that only format what was measured."""
    h = Harness.__new__(Harness)
    h.args = args
    h.figures = []
    h.samples = {}
    return h


def test_the_options_and_their_defaults_are_what_make_bench_has_always_taken() -> None:
    assert vars(parse_args([])) == {
        "seconds": 10,
        "warmup": 2,
        "connections": 32,
        "buyers": [1, 10, 50],
        "orders": [100, 300, 1000],
        "paced_rates": [25, 50, 75, 100],
        "paced_seconds": 8,
        "tracing_orders": 100,
        "expiry_orders": 1000,
        "expiry_window": 5,
        "expiry_rate": 20,
        "list_sizes": [1000, 100_000],
        "list_seconds": 5,
        "only": list(FIGURES),
        "profile": [],
        "out": Path("bench"),
    }
    args = parse_args(
        [
            *("--only", "purchase,list", "--buyers", "1,2", "--orders", "3,4"),
            *("--paced-rates", "", "--profile", "orders,", "--out", "elsewhere"),
        ]
    )
    assert (args.only, args.buyers, args.orders) == (["purchase", "list"], [1, 2], [3, 4])
    assert (args.paced_rates, args.profile, args.out) == ([], ["orders"], Path("elsewhere"))


def test_the_steps_run_in_the_order_they_always_have() -> None:
    args = parse_args(["--list-sizes", "10,2000"])
    assert [(key, title) for key, title, _ in steps(args)] == [
        ("memory", "memory idle"),
        ("list", "list at 10"),
        ("framework", "framework overhead"),
        ("burst", "currentuser during a sign-in burst"),
        ("post", "POST /api/tickets"),
        ("purchase", "purchase flow"),
        ("tracing", "tracing on and off"),
        ("expiry", "expiry precision"),
        ("list", "list at 2,000"),
    ]
    assert {key for key, _, _ in steps(args)} == set(FIGURES)


def test_results_json_keeps_its_keys(tmp_path: Path) -> None:
    h = harness(parse_args([]))
    h.figures = [Figure("a figure", "1 ms", passed=True)]
    h.samples = {"1 buyer": [2.0, 1.0]}
    write_results(tmp_path, h, 12.34, machine())
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {
        "when",
        "machine",
        "command",
        "wall_seconds",
        "figures",
        "propagation_ms",
    }
    assert set(results["machine"]) >= {"cpu", "cores", "memory_gb", "load_average_at_start"}
    assert results["wall_seconds"] == 12.3
    assert results["propagation_ms"] == {"1 buyer": [1.0, 2.0]}
    assert results["figures"][0]["verdict"] == "PASS"
    assert (tmp_path / "propagation.svg").read_text().startswith("<svg")


def test_the_purchase_targets_apply_at_fifty_buyers() -> None:
    h = harness(parse_args([]))
    ok = [Bought(f"t{i}", 201, f"o{i}", 10.0, 10.01, None) for i in range(300)]
    for n in (1, 50):
        purchase.purchase_figures(h, n, ok, ok, 2.0, [0.01] * 300)
    orders, propagation = h.figures[2:]
    assert (orders.name, orders.baseline, orders.target) == (
        "purchase, 50 buyers: orders",
        "150/s",
        ">= 100/s",
    )
    assert orders.passed is True
    assert (propagation.target, propagation.passed) == ("p50 <= 50 ms, p99 <= 250 ms", True)
    assert propagation.baseline == "p50 10.0 ms, p99 10.0 ms"
