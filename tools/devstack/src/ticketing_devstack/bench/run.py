"""The run: start the stack, measure each figure in turn, print the table, write the results.

Each figure is a module of `bench/figures/`. A figure that fails is reported as such and the
run goes on, so one broken measure never hides the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ticketing_devstack.bench.figures import (
    burst,
    expiry,
    framework,
    listing,
    memory,
    post,
    purchase,
    tracing,
)
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.machine import Machine, load_average, machine
from ticketing_devstack.bench.plot import cdf_svg
from ticketing_devstack.bench.report import Figure, table
from ticketing_devstack.e2e import TEST_RATE_LIMITS
from ticketing_devstack.stack import Stack
from ticketing_testing.servers import free_port

FIGURES = ("memory", "list", "framework", "burst", "post", "purchase", "tracing", "expiry")

Step = tuple[str, str, Callable[[Harness], Awaitable[object]]]  # --only key, title, measure


def steps(args: argparse.Namespace) -> list[Step]:
    """Every step in the order it runs; the list figure has two, the first and the last."""
    return [
        ("memory", "memory idle", memory.idle),
        ("list", f"list at {args.list_sizes[0]:,}", listing.small),
        ("framework", "framework overhead", framework.framework),
        ("burst", "currentuser during a sign-in burst", burst.signin_burst),
        ("post", "POST /api/tickets", post.post_tickets),
        ("purchase", "purchase flow", purchase.purchase),
        ("tracing", "tracing on and off", tracing.tracing),
        ("expiry", "expiry precision", expiry.expiry),
        ("list", f"list at {args.list_sizes[-1]:,}", listing.large),
    ]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ticketing_devstack.bench", description=__doc__, allow_abbrev=False
    )
    parser.add_argument("--seconds", type=float, default=10, help="each HTTP load run")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured run before each")
    parser.add_argument("--connections", type=int, default=32, help="for the HTTP load runs")
    parser.add_argument("--buyers", type=_ints, default=[1, 10, 50])
    parser.add_argument("--orders", type=_ints, default=[100, 300, 1000], help="per buyer count")
    parser.add_argument(
        "--paced-rates",
        type=_ints,
        default=[25, 50, 75, 100],
        help="orders a second offered by the most buyers, one paced run each ('': none)",
    )
    parser.add_argument("--paced-seconds", type=float, default=8, help="each paced run")
    parser.add_argument(
        "--tracing-orders", type=int, default=100, help="1-buyer orders with tracing on, then off"
    )
    parser.add_argument("--expiry-orders", type=int, default=1000)
    parser.add_argument("--expiry-window", type=int, default=5, help="ORDER_EXPIRATION_SECONDS")
    parser.add_argument(
        "--expiry-rate", type=float, default=20, help="orders a second in the paced expiry run"
    )
    parser.add_argument("--list-sizes", type=_ints, default=[1000, 100_000])
    parser.add_argument("--list-seconds", type=float, default=5)
    parser.add_argument(
        "--only", type=lambda s: s.split(","), default=list(FIGURES), help=",".join(FIGURES)
    )
    parser.add_argument(
        "--profile",
        type=lambda s: [p for p in s.split(",") if p],
        default=[],
        help="services to record with py-spy during the busiest purchase phase",
    )
    parser.add_argument("--out", type=Path, default=Path("bench"))
    args = parser.parse_args(argv)
    if len(args.orders) != len(args.buyers):
        parser.error("--orders needs one count per --buyers")
    return args


async def run_steps(h: Harness) -> None:
    """The steps `--only` asks for, each timed; one that fails is a figure saying so."""
    only = set(h.args.only)
    for key, title, step in steps(h.args):
        if key not in only:
            continue
        print(f"-- {title}", flush=True)
        started = time.monotonic()
        try:
            await step(h)
        except Exception as exc:
            traceback.print_exc()
            h.figures.append(
                Figure(
                    title,
                    f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}",
                    passed=False,
                )
            )
        print(f"   {time.monotonic() - started:.0f} s", flush=True)


async def _bench(args: argparse.Namespace, stack: Stack) -> Harness:
    h = Harness(args, stack)
    try:
        await run_steps(h)
    finally:
        await h.close()
    return h


def write_results(out: Path, h: Harness, wall: float, info: Machine) -> None:
    """bench/results.json, and bench/propagation.svg when there are propagation samples."""
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "command": "make bench"
        + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
        "wall_seconds": round(wall, 1),
        "figures": [f.as_json() for f in h.figures],
        "propagation_ms": {k: sorted(round(v, 3) for v in vs) for k, vs in h.samples.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if h.samples:
        (out / "propagation.svg").write_text(
            cdf_svg(h.samples, "Purchase propagation: order 201 to ticket reserved")
        )


def stack_env() -> dict[str, str]:
    """The environment the bench's stack runs with: this one, less the servers it would use
    instead of starting its own, plus what the bench needs of the services."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MONGO_URL", "NATS_URL", "REDIS_URL", "STRIPE_KEY")
    }
    env["MONGO_COUNT_COMMANDS"] = "true"
    # Every bench user signs up and in from this one address: auth's per-address limits are for
    # the Internet, not for fifty buyers in a second.
    env.update({k: v for k, v in TEST_RATE_LIMITS.items() if k not in env})
    # Each bench buyer orders ticket after ticket as fast as they are answered, far beyond the
    # open orders one person may hold (MAX_OPEN_ORDERS_PER_USER): the bench measures the flow.
    env.setdefault("MAX_OPEN_ORDERS_PER_USER", "1000000")
    env.setdefault("LOG_LEVEL", "WARNING")
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    info = machine()
    if info["load_generator"] != "wrk":
        print(
            "wrk not found: using the built-in asyncio load generator "
            "(`apt-get install -y wrk` for wrk)",
            flush=True,
        )
    run_dir = args.out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    stack = Stack(
        run_dir / "data", gateway_port=free_port(), env=stack_env(), log_dir=run_dir / "logs"
    )
    print(f"-- starting the stack (logs in {run_dir / 'logs'})", flush=True)
    stack.start()
    try:
        h = asyncio.run(_bench(args, stack))
    finally:
        stack.stop()
    wall = time.monotonic() - started
    info["load_average_at_end"] = load_average()
    write_results(args.out, h, wall, info)
    print()
    print(table(h.figures))
    print(
        f"\n{info['cores']} cores ({info['cpu']}), {info['memory_gb']} GB, "
        f"Python {info['python']}, load by {info['load_generator']}; "
        f"load average {info['load_average_at_start'][0]} at start, "
        f"{info['load_average_at_end'][0]} at end; {wall:.0f} s; "
        f"written {args.out / 'results.json'}"
        + (f" and {args.out / 'propagation.svg'}" if h.samples else "")
    )
    # A missed target is a figure like any other (FAIL in the table); only a measure that could
    # not be taken fails the command.
    return 1 if any(f.value.startswith("error:") for f in h.figures) else 0
