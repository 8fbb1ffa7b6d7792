"""Mongo round trips per purchase: each service counts its commands (a pymongo
`CommandListener`, opt-in MONGO_COUNT_COMMANDS, read at /debug/mongo-commands); the counts over
the purchase phases, minus the idle rate (the outbox and expiry sweeps) measured just before,
divided by the orders.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ticketing_devstack.bench.harness import Harness, MongoCommands
from ticketing_devstack.bench.report import Figure
from ticketing_devstack.stack import MONGO_SERVICES

IDLE_SECONDS = 3  # how long the idle rate is measured
SHOWN = 4  # the commands named in the table's line, most frequent first


@dataclass(frozen=True)
class Idle:
    """The counts before and after an idle spell, and when the measured phases started."""

    before: MongoCommands
    end: MongoCommands
    seconds: float
    phase_start: float  # monotonic


async def idle(h: Harness) -> Idle:
    """The idle spell, measured right before the purchase phases (which start on return)."""
    before = await h.mongo_commands()
    start = time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)
    end = await h.mongo_commands()
    seconds = time.monotonic() - start
    return Idle(before, end, seconds, time.monotonic())


def report(
    h: Harness, idle: Idle, after: MongoCommands, busy_seconds: float, purchases: int
) -> None:
    """One figure per service: the commands since the idle spell, less the idle rate over
    `busy_seconds`, per purchase."""
    total = max(purchases, 1)
    for svc in MONGO_SERVICES:
        idle_rate = (sum(idle.end[svc].values()) - sum(idle.before[svc].values())) / idle.seconds
        by_command = {
            cmd: n - idle.end[svc].get(cmd, 0)
            for cmd, n in after[svc].items()
            if n - idle.end[svc].get(cmd, 0)
        }
        per = (sum(by_command.values()) - idle_rate * busy_seconds) / total
        top = ", ".join(
            f"{cmd} {n / total:.2f}"
            for cmd, n in sorted(by_command.items(), key=lambda kv: -kv[1])[:SHOWN]
        )
        h.figures.append(
            Figure(
                f"Mongo round trips per purchase: {svc}",
                f"{per:.2f}" + (f" ({top})" if top else ""),
                f"{idle_rate:.1f}/s idle (subtracted)",
                "drive down",
                None,
                {"per_purchase": per, "idle_per_second": idle_rate, "commands": by_command},
            )
        )
