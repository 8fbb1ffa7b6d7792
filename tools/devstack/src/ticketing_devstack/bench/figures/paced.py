"""The load curve: the most buyers ordering `rate` a second between them (`--paced-rates`,
`--paced-seconds` each), each order by the next buyer in turn whatever the answers take (an open
loop). Propagation against the share of the two cores the stack is busy: with room it is the
path's own delay; the flat-out run, where every step waits its turn for a core, is the far end.
Reported, no target.
"""

from __future__ import annotations

from ticketing_devstack.bench import buying
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.machine import cores, cpu_by_process
from ticketing_devstack.bench.probe import Probe
from ticketing_devstack.bench.report import Figure, ms, percentile


async def purchase_paced(h: Harness, probe: Probe, rate: int, batch: list[str]) -> int:
    """One paced run of `batch` at `rate` a second; how many orders were made."""
    n = max(h.args.buyers)
    cpu_before = cpu_by_process(h.stack.procs)
    bought, elapsed = await buying.buy_paced(h, h.buyers[:n], iter(batch), rate)
    busy = sum(cpu_by_process(h.stack.procs, since=cpu_before).values()) / elapsed
    ok = buying.answered(bought)
    delays = await buying.propagation(probe, ok)
    answers = [b.answered - b.sent for b in ok]
    h.samples[f"{n} buyers, {rate}/s"] = [d * 1000 for d in delays]
    failed, unseen = len(bought) - len(ok), len(ok) - len(delays)
    notes = (f", {failed} not 201" if failed else "") + (f", {unseen} never seen" if unseen else "")
    h.figures.append(
        Figure(
            f"propagation, {n} buyers at {rate}/s",
            f"p50 {ms(percentile(delays, 50))}, p99 {ms(percentile(delays, 99))}"
            f" (201 in p50 {ms(percentile(answers, 50))}){notes}",
            f"{len(ok) / elapsed:.0f} orders/s, cores {busy / cores():.0%} busy",
            "-",
            None if not failed and not unseen else False,
            {
                "offered_per_s": rate,
                "orders_per_s": len(ok) / elapsed,
                "busy_cores": busy,
                "p50": percentile(delays, 50),
                "p99": percentile(delays, 99),
                "answer_p50": percentile(answers, 50),
                "samples": len(delays),
                "failed": failed,
                "unseen": unseen,
            },
        )
    )
    await h.settle()
    return len(ok)
