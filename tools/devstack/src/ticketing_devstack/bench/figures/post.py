"""POST /api/tickets: `--connections` clients straight to the tickets service, against the bare
app (`bench/hello.py`) answering the same POST."""

from __future__ import annotations

import json

from ticketing_devstack.bench import load as loads
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.report import Figure, ms


async def post_tickets(h: Harness) -> None:
    h.seller = (await h.users(1))[0]
    body = json.dumps({"title": "bench", "price": 10})
    headers = {"Content-Type": "application/json"}
    hello = h.hello(None)
    try:
        base = h.measure(
            loads.Load(
                f"{hello}/",
                "POST",
                body,
                headers,
                connections=h.args.connections,
                seconds=h.args.seconds,
            )
        )
    finally:
        h.retire("hello")
    res = h.measure(
        loads.Load(
            f"{h.url('tickets')}/api/tickets",
            "POST",
            body,
            {**headers, "Cookie": h.cookie(h.seller)},
            connections=h.args.connections,
            seconds=h.args.seconds,
        )
    )
    errors = f", {res.errors} errors" if res.errors else ""
    h.figures.append(
        Figure(
            f"POST /api/tickets, {h.args.connections} clients",
            f"{res.rps:,.0f} req/s, p50 {ms(res.p50)}, p99 {ms(res.p99)}{errors}",
            f"{base.rps:,.0f} req/s bare Starlette",
            "-",
            None if res.errors == 0 else False,
            {**res.__dict__, "baseline_rps": base.rps},
        )
    )
