"""`make bench`: how soon an order shows as reserved in the tickets service after its 201.

Starts the whole stack on free ports (as the e2e tests do), then for each round: sell a ticket,
order it, and poll the tickets service directly until the ticket carries the order id. The bar
we hold: p50 under 25 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from ticketing_devstack.client import User
from ticketing_devstack.stack import Stack
from ticketing_testing.servers import free_port


async def measure(stack: Stack, rounds: int) -> list[float]:
    gateway = stack.urls["gateway"]
    async with (
        User(gateway) as seller,
        User(gateway) as buyer,
        httpx.AsyncClient(base_url=stack.urls["tickets"]) as tickets,
    ):
        await seller.signup()
        await buyer.signup()
        delays: list[float] = []
        for i in range(rounds):
            ticket = await seller.sell(f"bench {i}", 10)
            while True:  # until orders' replica has the ticket (not what is measured)
                res = await buyer.order(ticket["id"])
                if res.status_code != 404:
                    break
                await asyncio.sleep(0.002)
            assert res.status_code == 201, res.text
            order_id = res.json()["id"]
            answered = time.perf_counter()
            while True:
                shown = (await tickets.get(f"/api/tickets/{ticket['id']}")).json()
                if shown["orderId"] == order_id:
                    break
                await asyncio.sleep(0.0005)
            delays.append((time.perf_counter() - answered) * 1000)
        return delays


def main() -> int:
    parser = argparse.ArgumentParser(prog="ticketing_devstack.bench")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ticketing-bench-") as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("MONGO_URL", "NATS_URL", "REDIS_URL", "STRIPE_KEY")
        }
        stack = Stack(
            Path(tmp) / "data", gateway_port=free_port(), env=env, log_dir=Path(tmp) / "logs"
        )
        stack.start()
        try:
            delays = asyncio.run(measure(stack, args.rounds))
        finally:
            stack.stop()
    delays.sort()
    q = statistics.quantiles(delays, n=100)
    print(
        f"order 201 -> reserved in tickets, {len(delays)} rounds: "
        f"p50 {q[49]:.1f} ms, p90 {q[89]:.1f} ms, p99 {q[98]:.1f} ms, max {delays[-1]:.1f} ms"
    )
    print("bar: p50 < 25 ms -> " + ("PASS" if q[49] < 25 else "FAIL"))
    return 0 if q[49] < 25 else 1


if __name__ == "__main__":
    raise SystemExit(main())
