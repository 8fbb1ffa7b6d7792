"""How the bench's buyers order through the gateway, and how it times what follows on the bus.

Flat out (`buy`: each buyer orders its next ticket as soon as its last order is answered) or
paced (`buy_paced`: at a given rate, whatever the answers take); each order timed from the
request to its answer (`Bought`), and then to the first event naming it (`propagation`, by the
bus probe).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.probe import Probe, Seen
from ticketing_devstack.people import User


@dataclass
class Bought:
    ticket_id: str
    status: int
    order_id: str
    sent: float  # monotonic
    answered: float
    expires_at: datetime | None


def session_of(h: Harness, user: User) -> aiohttp.ClientSession:
    """The user's own keep-alive connection to the gateway, opened once, carrying their
    session cookie. aiohttp, not the user's httpx client: the driver shares the two cores
    with the stack, so the CPU it spends on a request is taken from the stack it measures, and
    httpx spends several times what aiohttp does (measured against the bare hello app: the
    purchase flow in BENCHMARKS.md, "Benchmarks")."""
    session = h.sessions.get(user.id)
    if session is None:
        session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=30),
            headers={"Cookie": h.cookie(user)},
        )
        h.sessions[user.id] = session
    return session


async def order(h: Harness, user: User, ticket_id: str) -> Bought:
    """One order through the gateway, timed."""
    sent = time.monotonic()
    async with session_of(h, user).post(
        f"{h.url('gateway')}/api/orders", json={"ticketId": ticket_id}
    ) as res:
        body = await res.json() if res.status == 201 else {}
    answered = time.monotonic()
    expires = body.get("expiresAt")
    return Bought(
        ticket_id,
        res.status,
        body.get("id", ""),
        sent,
        answered,
        datetime.fromisoformat(expires) if expires else None,
    )


async def buy(h: Harness, buyers: list[User], tickets: Iterator[str]) -> tuple[list[Bought], float]:
    """Each buyer orders the next ticket as soon as its last order is answered."""
    bought: list[Bought] = []

    async def buyer(user: User) -> None:
        for ticket_id in tickets:
            bought.append(await order(h, user, ticket_id))

    start = time.monotonic()
    await asyncio.gather(*(buyer(u) for u in buyers))
    return bought, time.monotonic() - start


async def buy_paced(
    h: Harness, buyers: list[User], tickets: Iterator[str], rate: float
) -> tuple[list[Bought], float]:
    """Order the tickets at `rate` a second, each by the next buyer in turn, whatever the
    answers take (an open loop: arrivals do not wait for the stack)."""
    bought: list[Bought] = []

    async def one(user: User, ticket_id: str) -> None:
        bought.append(await order(h, user, ticket_id))

    start = time.monotonic()
    tasks = []
    for i, ticket_id in enumerate(tickets):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(buyers[i % len(buyers)], ticket_id)))
    await asyncio.gather(*tasks)
    return bought, time.monotonic() - start


def answered(bought: list[Bought]) -> list[Bought]:
    """The orders that were made (201)."""
    return [b for b in bought if b.status == 201]


async def propagation(probe: Probe, ok: list[Bought]) -> list[float]:
    """Seconds from each order's 201 to the first ticket:updated naming it (orders never
    seen within a minute have none)."""
    seen = await wait_seen(probe, "ticket.updated", {b.order_id for b in ok}, 60)
    return [seen[b.order_id].monotonic - b.answered for b in ok if b.order_id in seen]


async def wait_seen(probe: Probe, subject: str, keys: set[str], timeout: float) -> dict[str, Seen]:
    """The first event on `subject` for each of `keys`, waiting up to `timeout` seconds for
    them all."""
    deadline = time.monotonic() + timeout
    while True:
        seen = probe.first(subject)
        if keys <= seen.keys() or time.monotonic() > deadline:
            return {k: seen[k] for k in keys if k in seen}
        await asyncio.sleep(0.2)


def label(n: int) -> str:
    """A buyer count as the figures name it: `1 buyer`, `10 buyers`."""
    return f"{n} buyer{'s' if n > 1 else ''}"
