"""End to end, a JetStream stream full: the ORDERS stream is small (NATS_MAX_BYTES_ORDERS) and
payments, one of its consumers, is frozen (SIGSTOP), so the stream keeps every order event for
it (interest retention) until it is full and refuses the next ones. Buyers keep ordering (201:
each order:created waits in orders' outbox), the refusals are counted, and the pods stay ready.
Once payments is back it drains the stream, the outbox publishes what was refused, and every
order goes on: paid orders complete and are captured, unpaid ones expire. Nothing is lost.

Its own stack (the limit is a setting of every service), driven over HTTP through the gateway.
"""

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ticketing_devstack.e2e import (
    assert_consistent,
    buy_until_answered,
    dead_letters,
    eventually,
    intents_of,
    local_stack,
    ticket_state,
)
from ticketing_devstack.stack import Stack

pytestmark = [pytest.mark.connected, pytest.mark.local_processes]

EXPIRY = 45  # seconds: time to fill the stream, free it and pay before the orders run out
ENV = {
    "ORDER_EXPIRATION_SECONDS": str(EXPIRY),
    "EXPIRY_GRACE_SECONDS": "1",
    "JWT_KEY": "full-stream-jwt-key-0123456789abcdef0123456789",
    # A few dozen order events fill it.
    "NATS_MAX_BYTES_ORDERS": "24KiB",
    "NATS_ACK_WAIT_SECONDS": "5",
    "NATS_RETRY_DELAY_SECONDS": "0.1",
    "OUTBOX_SWEEP_SECONDS": "0.5",
    "MAX_OPEN_ORDERS_PER_USER": "1000",
}
REFUSED = "ticketing_bus_publish_refused_total"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("full-stream"), ENV) as stack:
        yield stack


async def refused(stack: Stack) -> float:
    """What orders' /metrics counts of publishes ORDERS refused for lack of room."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{stack.urls['orders']}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(REFUSED) and 'stream="ORDERS"' in line
    )


async def test_a_full_stream_holds_orders_back_and_nothing_is_lost(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller, buyer, late = await user_factory(), await user_factory(), await user_factory()
    tickets = [await seller.sell(f"seat {i}", 10.0) for i in range(60)]
    # Both buyers' orders are known everywhere before the stream fills: the bus works.
    first = (await buy_until_answered(buyer, tickets[0]["id"])).json()

    payments = stack.procs["payments"].popen
    assert payments is not None
    os.kill(payments.pid, signal.SIGSTOP)
    orders = [first]
    try:
        for ticket in tickets[1:]:
            res = await buy_until_answered(buyer if len(orders) % 2 else late, ticket["id"])
            assert res.status_code == 201, res.text
            orders.append(res.json())
            if await refused(stack) > 0 and len(orders) >= 40:
                break
        assert await refused(stack) > 0, "the stream never filled"
        # The pods serve what they can: orders is ready, the listing answers.
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{stack.urls['orders']}/readyz")).status_code == 200
        assert (await seller.http.get("/api/tickets")).status_code == 200
    finally:
        os.kill(payments.pid, signal.SIGCONT)

    # Every order reaches tickets (reserved) once payments has made room.
    async def all_reserved() -> bool:
        states = [await ticket_state(seller, o["ticket"]["id"]) for o in orders]
        return all(s["orderId"] == o["id"] for s, o in zip(states, orders, strict=True))

    await eventually(all_reserved, timeout=60)

    # Pay all but two; those expire.
    to_pay, to_expire = orders[:-2], orders[-2:]

    async def pay(order: dict[str, Any]) -> None:
        owner = buyer if order["userId"] == first["userId"] else late

        async def paid() -> httpx.Response | None:
            res = await owner.pay(order["id"])
            return None if res.status_code == 404 else res

        res = await eventually(paid, timeout=30)
        assert res.status_code == 201, res.text

    await asyncio.gather(*(pay(o) for o in to_pay))

    async def settled() -> bool:
        for order, want in [(o, "complete") for o in to_pay] + [
            (o, "cancelled") for o in to_expire
        ]:
            owner = buyer if order["userId"] == first["userId"] else late
            if (await owner.get(f"/api/orders/{order['id']}"))["status"] != want:
                return False
        return True

    await eventually(settled, timeout=EXPIRY + 60)
    for order in to_pay:
        assert await intents_of(stack, order["id"]) == [("succeeded", 1000)]
    await assert_consistent(stack, timeout=60)
    assert await dead_letters(stack) == []
