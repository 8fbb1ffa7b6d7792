"""Expiry precision: orders with a short window (orders restarted with ORDER_EXPIRATION_SECONDS
= `--expiry-window`); each must be cancelled (order:cancelled on the bus) within 2 s after its
expiresAt + EXPIRY_GRACE_SECONDS (the worker's expiration:complete is timed too, to tell its
share of the lateness from orders'). Twice:
- paced: the orders arrive at `--expiry-rate` a second (open loop, below what the stack
  sustains), so the expiries due each second meet a machine with room to run them: the figure
  with the target;
- saturated: bought as fast as the buyers can. The machine is then busy buying, orders'
  handling of expiration:complete waits behind new orders for the same two cores, and the
  lateness says how overloaded the machine is rather than how precise expiry is: reported, no
  target.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ticketing_devstack.bench import buying, seed
from ticketing_devstack.bench.buying import Bought
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.probe import Probe, Seen
from ticketing_devstack.bench.report import Figure, ms, percentile

WITHIN_SECONDS = 2  # the target: cancelled at most this long after it is due
WAIT_AFTER_SECONDS = 15  # how long past the last order's due time the probe keeps listening


async def expiry(h: Harness) -> None:
    grace = float(h.stack.env.get("EXPIRY_GRACE_SECONDS") or 5)
    orders_proc = h.stack.procs["orders"]
    orders_proc.env["ORDER_EXPIRATION_SECONDS"] = str(h.args.expiry_window)
    h.stack.restart("orders")
    if not h.pool:
        await seed.tickets_for_sale(h, seed.expiry_orders(h.args))
    if not h.buyers:
        h.buyers = await h.users(max(h.args.buyers))
    await h.settle()
    n = h.args.expiry_orders
    paced, saturated = h.pool[-2 * n : -n], h.pool[-n:]
    buyers = h.buyers[: max(h.args.buyers)]
    rate = h.args.expiry_rate
    await expiry_run(
        h,
        f"paced at {rate:g}/s",
        grace,
        buying.buy_paced(h, buyers, iter(paced), rate),
        target=True,
    )
    await h.settle()
    await expiry_run(
        h,
        f"{len(buyers)} buyers flat out",
        grace,
        buying.buy(h, buyers, iter(saturated)),
        target=False,
    )


@dataclass(frozen=True)
class Lateness:
    """Seconds after its due time each order was cancelled, and its expiration:complete came."""

    cancelled: list[float]
    fired: list[float]


def lateness(
    ok: list[Bought], grace: float, seen: dict[str, Seen], fired: dict[str, Seen]
) -> Lateness:
    late: list[float] = []
    late_fired: list[float] = []
    for b in ok:
        if b.expires_at is None:
            continue
        due = (b.expires_at + timedelta(seconds=grace)).timestamp()
        if b.order_id in seen:
            late.append(seen[b.order_id].wall - due)
        if b.order_id in fired:
            late_fired.append(fired[b.order_id].wall - due)
    return Lateness(late, late_fired)


async def expiry_run(
    h: Harness,
    how: str,
    grace: float,
    buying_done: Awaitable[tuple[list[Bought], float]],
    *,
    target: bool,
) -> None:
    with Probe(h.url("nats")) as probe:
        bought, _ = await buying_done
        ok = [b for b in bought if b.status == 201 and b.expires_at is not None]
        last_due = max((b.expires_at for b in ok if b.expires_at), default=datetime.now(UTC))
        wait = (last_due - datetime.now(UTC)).total_seconds() + grace + WAIT_AFTER_SECONDS
        seen = await buying.wait_seen(probe, "order.cancelled", {b.order_id for b in ok}, wait)
        fired = probe.first("expiration.complete")
    h.figures.append(_figure(h, how, grace, bought, ok, lateness(ok, grace, seen, fired), target))


def _figure(
    h: Harness,
    how: str,
    grace: float,
    bought: list[Bought],
    ok: list[Bought],
    late: Lateness,
    target: bool,
) -> Figure:
    within = sum(1 for d in late.cancelled if 0 <= d <= WITHIN_SECONDS)
    early = sum(1 for d in late.cancelled if d < 0)
    missing = len(ok) - len(late.cancelled)
    failed = len(bought) - len(ok)
    notes = "".join(
        f", {n} {what}"
        for n, what in ((early, "early"), (missing, "never cancelled"), (failed, "not 201"))
        if n
    )
    cancelled, fired = late.cancelled, late.fired
    return Figure(
        f"expiry, {len(ok)} orders, {h.args.expiry_window} s window, {how}",
        f"{within}/{len(ok)} within {WITHIN_SECONDS} s; late p50 {ms(percentile(cancelled, 50))}, "
        f"p99 {ms(percentile(cancelled, 99))}, max {ms(max(cancelled, default=float('nan')))}"
        f" (expiration:complete late p50 {ms(percentile(fired, 50))}, "
        f"p99 {ms(percentile(fired, 99))})" + notes,
        f"due at expiresAt + {grace:g} s",
        f"all within {WITHIN_SECONDS} s" if target else "-",
        within == len(ok) == len(bought) and len(ok) > 0 if target else None,
        {
            "orders": len(ok),
            "within": within,
            "early": early,
            "missing": missing,
            "late_p50": percentile(cancelled, 50),
            "fired_late_p50": percentile(fired, 50),
            "fired_late_p99": percentile(fired, 99),
        },
    )
