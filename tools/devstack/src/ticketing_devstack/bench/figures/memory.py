"""Memory: each service process's resident memory idle (right after start) and after the
purchase flow (taken by the purchase figure, at its end)."""

from __future__ import annotations

from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.machine import rss_mb
from ticketing_devstack.bench.report import Figure
from ticketing_devstack.stack import SERVICES

# Processes whose resident memory is reported: the services and expiration's RQ worker.
MEMORY_OF = (*SERVICES, "worker")
TARGET_MB = 150


async def idle(h: Harness) -> None:
    h.idle_rss = {n: rss_mb(h.pid(n)) for n in MEMORY_OF}


async def after(h: Harness) -> None:
    for name in MEMORY_OF:
        now = rss_mb(h.pid(name))
        before = h.idle_rss.get(name, float("nan"))
        h.figures.append(
            Figure(
                f"memory {name} after purchase load",
                f"{now:.0f} MB",
                f"{before:.0f} MB idle",
                f"<= {TARGET_MB} MB",
                now <= TARGET_MB,
                {"after_mb": now, "idle_mb": before},
            )
        )
