"""What tracing costs: currentuser on one core (from the framework figure's runs, or measured
here when it did not run), and 1-buyer propagation with tickets and orders restarted with
tracing off (OTEL_SDK_DISABLED=true), right after the same with it on (as the stack runs).
"""

from __future__ import annotations

from ticketing_devstack.bench import buying, seed
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.pinned import pinned_currentuser
from ticketing_devstack.bench.probe import Probe
from ticketing_devstack.bench.report import Figure, ms, percentile

RESTARTED = ("tickets", "orders")


async def tracing(h: Harness) -> None:
    if len(h.currentuser) < 2:  # the framework figure did not run: measure here
        _, cookie = await h.one_cookie()
        for kept in (None, 1.0):
            pinned_currentuser(h, cookie, kept=kept)
    on, off = h.currentuser[True], h.currentuser[False]
    h.figures.append(
        Figure(
            "tracing on: currentuser (valid cookie), 1 core",
            f"{on:,.0f} req/s ({on / off:.2f}x)",
            f"{off:,.0f} req/s tracing off",
            "-",
            None,
            {"on_rps": on, "off_rps": off},
        )
    )
    if not h.buyers:
        h.buyers = await h.users(1)
    start = seed.purchase_orders(h.args)  # past the tickets the purchase flow bought
    if not h.pool:
        await seed.tickets_for_sale(h, seed.tracing_orders(h.args))
        start = 0
    n = h.args.tracing_orders
    p50: dict[bool, float] = {}
    for off_now in (False, True):
        _set_tracing(h, off=off_now)
        await h.settle()
        batch = h.pool[start : start + n]
        start += n
        with Probe(h.url("nats")) as probe:
            bought, _ = await buying.buy(h, h.buyers[:1], iter(batch))
            delays = await buying.propagation(probe, buying.answered(bought))
        p50[off_now] = percentile(delays, 50)
    _set_tracing(h, off=False)
    h.figures.append(
        Figure(
            "tracing on: propagation p50, 1 buyer",
            f"{ms(p50[False])} ({n} orders)",
            f"{ms(p50[True])} tracing off",
            "-",
            None,
            {"on_p50": p50[False], "off_p50": p50[True]},
        )
    )


def _set_tracing(h: Harness, *, off: bool) -> None:
    """Tickets and orders restarted with tracing off or on."""
    for name in RESTARTED:
        h.stack.procs[name].env["OTEL_SDK_DISABLED"] = str(off).lower()
        h.stack.restart(name)
