"""List scaling: `GET /api/tickets` (its first page) at the small size, at the large size, and
at the small size again right after, which is the large run's baseline.

The second small run is the baseline, not the first: the host's speed drifts over the minutes
between the first run and the large one (the same code has measured well apart against the
first and against the next: BENCHMARKS.md, "Benchmarks", list scaling).
"""

from __future__ import annotations

from bson import ObjectId

from ticketing_devstack.bench import load as loads
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.report import Figure, ms
from ticketing_devstack.bench.seed import fill_tickets

TARGET_RATIO = 1.5


async def list_p50(h: Harness, size: int) -> tuple[int, loads.LoadResult]:
    """The list with the tickets database filled up to `size`: how many it held, the run."""
    have = await fill_tickets(h, size)
    url = f"{h.url('tickets')}/api/tickets"
    return have, h.measure(loads.Load(url, seconds=h.args.list_seconds))


async def small(h: Harness) -> tuple[int, loads.LoadResult]:
    """The first step: the list at the small size."""
    h.list_base = await list_p50(h, h.args.list_sizes[0])
    h.list_since = ObjectId()  # what is written after this is gone for the re-run
    return h.list_base


async def large(h: Harness) -> None:
    """The last step: the list at the large size, then at the small one again right after
    (every ticket written since the first small run deleted, the purchase flow's too)."""
    _, first = h.list_base or await small(h)
    size, res = await list_p50(h, h.args.list_sizes[-1])
    await h.mongo["tickets"]["tickets"].delete_many({"_id": {"$gte": h.list_since}})
    base_size, base = await list_p50(h, h.args.list_sizes[0])
    ratio = res.p50 / base.p50
    # A run that got no answer in time has no latency to speak of (wrk reports 0): a failure.
    answered = res.requests > 0 and res.errors == 0 and base.requests > 0
    notes = "" if answered else f"; {res.requests} answered, {res.errors} errors"
    h.figures.append(
        Figure(
            f"GET /api/tickets p50, {size:,} tickets",
            f"{ms(res.p50)} ({ratio:.2f}x){notes}",
            f"{ms(base.p50)} at {base_size:,} right after ({ms(first.p50)} at the start)",
            f"<= {TARGET_RATIO}x",
            answered and ratio <= TARGET_RATIO,
            {
                "p50": res.p50,
                "p99": res.p99,
                "requests": res.requests,
                "errors": res.errors,
                "base_p50": base.p50,
                "base_p99": base.p99,
                "base_size": base_size,
                "start_p50": first.p50,
            },
        )
    )
