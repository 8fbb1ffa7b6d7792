"""The purchase flow: at each buyer count (`--buyers`, `--orders` each), every buyer orders its
next ticket through the gateway as soon as its last one is answered; orders a second and the
201's latency, and propagation (the order's 201 to the first ticket:updated naming it, timed by
the bus probe). Then the load curve (`paced`). Over all of it: the CPU per purchase at the most
buyers (`cpu`), the Mongo round trips per purchase (`round_trips`), the memory after it
(`memory`).
"""

from __future__ import annotations

import asyncio
import time

from ticketing_devstack.bench import buying, seed
from ticketing_devstack.bench.buying import Bought
from ticketing_devstack.bench.figures import cpu, memory, paced, round_trips
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.machine import cpu_by_process
from ticketing_devstack.bench.probe import Probe
from ticketing_devstack.bench.profiling import start_profiles, stop_profiles
from ticketing_devstack.bench.report import Figure, ms, per_second, percentile

TARGET_BUYERS = 50  # the buyer count the targets are for
TARGET_ORDERS_PER_SECOND = 100
TARGET_P50, TARGET_P99 = 0.05, 0.25  # propagation, seconds


async def purchase(h: Harness) -> None:
    await seed.tickets_for_sale(
        h, seed.purchase_orders(h.args) + seed.tracing_orders(h.args) + seed.expiry_orders(h.args)
    )
    h.buyers = await h.users(max(h.args.buyers))
    await h.settle()
    idle = await round_trips.idle(h)
    tickets = iter(h.pool)
    total = 0
    with Probe(h.url("nats")) as probe:
        for n, orders in zip(h.args.buyers, h.args.orders, strict=True):
            total += await flat_out(h, probe, n, [next(tickets) for _ in range(orders)])
        for rate, orders in seed.paced_orders(h.args).items():
            total += await paced.purchase_paced(
                h, probe, rate, [next(tickets) for _ in range(orders)]
            )
    await asyncio.sleep(1)  # the last sweeps of the outbox relays
    after = await h.mongo_commands()
    busy_seconds = time.monotonic() - idle.phase_start
    await memory.after(h)
    round_trips.report(h, idle, after, busy_seconds, total)


async def flat_out(h: Harness, probe: Probe, n: int, batch: list[str]) -> int:
    """`n` buyers ordering `batch` flat out (profiled and its CPU reported at the most buyers);
    how many orders were made."""
    busiest = n == max(h.args.buyers)
    profiling = start_profiles(h) if busiest else []
    cpu_before = cpu_by_process(h.stack.procs)
    bought, elapsed = await buying.buy(h, h.buyers[:n], iter(batch))
    cpu_used = cpu_by_process(h.stack.procs, since=cpu_before)
    stop_profiles(profiling)
    if busiest:
        cpu.cpu_figure(h, n, cpu_used, sum(b.status == 201 for b in bought), elapsed)
    ok = buying.answered(bought)
    delays = await buying.propagation(probe, ok)
    h.samples[buying.label(n)] = [d * 1000 for d in delays]
    purchase_figures(h, n, bought, ok, elapsed, delays)
    await h.settle()
    return len(ok)


def purchase_figures(
    h: Harness, n: int, bought: list[Bought], ok: list[Bought], elapsed: float, delays: list[float]
) -> None:
    """The orders and the propagation at `n` buyers (the 1-buyer run their baseline)."""
    label = buying.label(n)
    rate = len(ok) / elapsed
    answers = [b.answered - b.sent for b in ok]
    failed, unseen = len(bought) - len(ok), len(ok) - len(delays)
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    first = h.figure("purchase, 1 buyer: orders")
    first_prop = h.figure("propagation, 1 buyer")
    at_target = n == TARGET_BUYERS
    notes = (f", {failed} not 201" if failed else "") + (f", {unseen} never seen" if unseen else "")
    h.figures.append(
        Figure(
            f"purchase, {label}: orders",
            f"{per_second(rate)} ({len(ok)} orders), 201 in p50 {ms(percentile(answers, 50))}"
            f" p99 {ms(percentile(answers, 99))}{notes}",
            first.value.split(" (")[0] if first and n > 1 else "-",
            f">= {TARGET_ORDERS_PER_SECOND}/s" if at_target else "-",
            (rate >= TARGET_ORDERS_PER_SECOND and not failed)
            if at_target
            else (None if not failed else False),
            {"orders": len(ok), "failed": failed, "seconds": elapsed, "orders_per_s": rate},
        )
    )
    h.figures.append(
        Figure(
            f"propagation, {label}",
            f"p50 {ms(p50)}, p99 {ms(p99)}, max {ms(max(delays, default=float('nan')))}",
            first_prop.value.split(", max")[0] if first_prop and n > 1 else "-",
            f"p50 <= {ms_target(TARGET_P50)}, p99 <= {ms_target(TARGET_P99)}" if at_target else "-",
            (p50 <= TARGET_P50 and p99 <= TARGET_P99 and not unseen) if at_target else None,
            {"p50": p50, "p99": p99, "samples": len(delays), "unseen": unseen},
        )
    )


def ms_target(seconds: float) -> str:
    """A target in seconds as the table writes it: `50 ms`."""
    return f"{seconds * 1000:g} ms"
