"""CPU per purchase (at the most buyers): user + system CPU time of every process of the stack
over the flat-out run, by part (the services with the worker, the nx-27017 servers, the
gateway, nats-server, redis, the bench itself), divided by the orders; and the ceiling that puts
on orders a second with every process on this machine's cores. results.json has it per process
too.
"""

from __future__ import annotations

from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.machine import by_group, cores
from ticketing_devstack.bench.report import Figure, ms

SHOWN = 0.0005  # seconds: a part that used less is left out of the table's line


def cpu_figure(
    h: Harness, n: int, by_process: dict[str, float], orders: int, elapsed: float
) -> None:
    used = by_group(by_process)
    per = {group: seconds / max(orders, 1) for group, seconds in used.items()}
    total = sum(per.values())
    available = cores()
    parts = ", ".join(
        f"{group} {ms(seconds)}"
        for group, seconds in sorted(per.items(), key=lambda kv: -kv[1])
        if seconds >= SHOWN
    )
    h.figures.append(
        Figure(
            f"CPU per purchase, {n} buyers",
            f"{ms(total)} ({parts})",
            f"{available} cores: at most {available / total:,.0f} orders/s" if total else "-",
            "-",
            None,
            {
                "per_order_seconds": per,
                "per_order_ms_by_process": {
                    name: round(seconds / max(orders, 1) * 1000, 2)
                    for name, seconds in sorted(by_process.items(), key=lambda kv: -kv[1])
                },
                "orders": orders,
                "seconds": elapsed,
                "busy_cores": sum(used.values()) / elapsed,
            },
        )
    )
