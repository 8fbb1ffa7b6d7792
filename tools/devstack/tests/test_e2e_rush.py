"""End to end, a rush against a small line: each service serves 2 requests at once and lets 3
wait (HTTP_CONCURRENCY, HTTP_QUEUE). Buyers order 30 tickets at once while orders' database is
paused (SIGSTOP), so the first requests hang in the service: the line fills, and every request
beyond it is refused at once with a 503 and Retry-After. Then the database comes back, the
requests let in finish, and nothing refused was written: no order, no reservation.

Its own stack (the line is a setting of every service), driven over HTTP through the gateway.
"""

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from ticketing_devstack.e2e import (
    assert_consistent,
    dead_letters,
    eventually,
    local_stack,
    ticket_state,
)
from ticketing_devstack.invariants import mongo_urls
from ticketing_devstack.people import User
from ticketing_devstack.stack import Stack

pytestmark = [pytest.mark.connected, pytest.mark.local_processes]

LET_IN, WAITING = 2, 3
ENV = {
    "JWT_KEY": "e2e-jwt-key-0123456789abcdef0123456789",
    "HTTP_CONCURRENCY": str(LET_IN),
    "HTTP_QUEUE": str(WAITING),
    "OUTBOX_SWEEP_SECONDS": "0.5",
}
BUYERS, EACH = 3, 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("stack"), ENV) as stack:
        yield stack


async def replicated_in_orders(stack: Stack, ticket_ids: list[str]) -> None:
    """Wait until orders knows every ticket (its replica is fed by ticket:created)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_urls(stack.urls)["orders"])
    try:

        async def known() -> bool:
            found = await client["orders"]["tickets"].count_documents({"_id": {"$in": ticket_ids}})
            return found == len(ticket_ids)

        await eventually(known)
    finally:
        await client.close()


async def test_a_rush_is_served_in_turn_or_refused_at_once_and_nothing_refused_is_written(
    stack: Stack, user_factory: Callable[[], Awaitable[User]]
) -> None:
    seller = await user_factory()
    buyers = [await user_factory() for _ in range(BUYERS)]
    tickets = [(await seller.sell(f"rush {n}", 10 + n))["id"] for n in range(BUYERS * EACH)]
    await replicated_in_orders(stack, tickets)
    wanted = {t: buyers[n % BUYERS] for n, t in enumerate(tickets)}

    mongo = stack.procs["mongo-orders"].popen
    assert mongo is not None
    os.kill(mongo.pid, signal.SIGSTOP)
    try:
        rush = {t: asyncio.create_task(buyer.order(t)) for t, buyer in wanted.items()}

        async def refused_all_but_the_line() -> bool:
            return sum(task.done() for task in rush.values()) == len(rush) - LET_IN - WAITING

        await eventually(refused_all_but_the_line, timeout=10)
        # Meanwhile, an anonymous visitor browses (tickets has its own line), and orders'
        # liveness probe does not wait in the full one.
        async with httpx.AsyncClient(base_url=stack.urls["gateway"]) as anonymous:
            assert (await anonymous.get("/api/tickets")).status_code == 200
            probe = f"http://127.0.0.1:{stack.procs['orders'].port}/healthz"
            assert (await anonymous.get(probe, timeout=5)).status_code == 200
    finally:
        os.kill(mongo.pid, signal.SIGCONT)
    answers = {t: await task for t, task in rush.items()}

    served = {t for t, res in answers.items() if res.status_code == 201}
    refused = {t for t, res in answers.items() if res.status_code == 503}
    assert len(served) == LET_IN + WAITING
    assert served | refused == set(tickets)
    for t in refused:
        assert answers[t].headers["retry-after"] == "1"
        assert answers[t].json() == {"errors": [{"message": "Service busy, try again"}]}

    # What each buyer sees: exactly the orders they were answered 201 for.
    for buyer in buyers:
        mine = {o["ticket"]["id"] for o in await buyer.get("/api/orders")}
        assert mine == {t for t in served if wanted[t] is buyer}

    async def reserved_as_answered() -> bool:
        states = {t: (await ticket_state(seller, t))["orderId"] for t in tickets}
        return all(
            states[t] == answers[t].json()["id"] if t in served else states[t] is None
            for t in tickets
        )

    await eventually(reserved_as_answered)

    # A refused buyer who tries again after Retry-After, one at a time, gets the ticket.
    for t in sorted(refused)[:3]:
        await asyncio.sleep(int(answers[t].headers["retry-after"]))
        again = await wanted[t].order(t)
        assert again.status_code == 201, again.text
    await assert_consistent(stack)
    assert await dead_letters(stack) == []
