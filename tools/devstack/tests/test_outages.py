"""Long outages, on the real processes: a consumer's own database down for longer than the whole
retry budget, Redis losing every pending expiry, and NATS frozen across an order's last moments
after its buyer paid. Nothing is dead-lettered, nothing stays stuck, a payment made in time
completes its order, and every replica converges.
"""

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import redis.asyncio

from ticketing_common.bus import RetryPolicy
from ticketing_common.settings import ServiceSettings
from ticketing_devstack.e2e import (
    assert_consistent,
    buy_all,
    dead_letters,
    eventually,
    expiries_scheduled,
    intents_of,
    local_stack,
    payments_knows,
    ticket_state,
)
from ticketing_devstack.stack import Stack

pytestmark = pytest.mark.connected

EXPIRY = 8  # seconds an order holds its ticket
GRACE = 1.0  # EXPIRY_GRACE_SECONDS
SWEEP_GRACE = 2.0  # EXPIRY_SWEEP_GRACE_SECONDS: payments' sweep, minutes in production
ENV = {
    "ORDER_EXPIRATION_SECONDS": str(EXPIRY),
    "EXPIRY_GRACE_SECONDS": str(GRACE),
    "EXPIRY_SWEEP_SECONDS": "0.5",
    "EXPIRY_SWEEP_GRACE_SECONDS": str(SWEEP_GRACE),
    "JWT_KEY": "outage-jwt-key-0123456789abcdef0123456789",
    # A short retry budget, so an outage longer than it takes seconds, not minutes.
    "NATS_ACK_WAIT_SECONDS": "3",
    "NATS_MAX_DELIVER": "8",
    "NATS_RETRY_DELAY_SECONDS": "0.1",
    "OUTBOX_SWEEP_SECONDS": "0.5",
    # A failing delivery fails fast, so the outage exhausts the old retry rules in seconds.
    "MONGO_TIMEOUT_SECONDS": "0.5",
}


def retry_budget() -> float:
    settings = ServiceSettings(
        environment="test",
        jwt_key=ENV["JWT_KEY"],
        nats_ack_wait_seconds=float(ENV["NATS_ACK_WAIT_SECONDS"]),
        nats_max_deliver=int(ENV["NATS_MAX_DELIVER"]),
        nats_retry_delay_seconds=float(ENV["NATS_RETRY_DELAY_SECONDS"]),
    )
    return RetryPolicy.from_settings(settings).poison_budget


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("outages"), ENV) as stack:
        yield stack


async def test_orders_database_down_longer_than_the_retry_budget_loses_nothing(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller, buyer = await user_factory(), await user_factory()
    before = [await seller.sell(f"before {i}") for i in range(3)]
    await buy_all(buyer, before[:2])

    stack.kill("mongo-orders", signal.SIGKILL)
    down_at = time.monotonic()
    # While orders cannot write: tickets are sold and edited (orders must replicate each
    # version, in order), and a buyer tries to order (503, try again).
    during = [await seller.sell(f"during {i}") for i in range(3)]
    for ticket in [*during, before[2]]:
        for n in range(3):
            res = await seller.http.put(
                f"/api/tickets/{ticket['id']}", json={"title": f"edit {n}", "price": 10 + n}
            )
            assert res.status_code == 200, res.text
    res = await buyer.order(during[0]["id"])
    assert res.status_code in (503, 404), res.text
    # The outage itself: longer than every delivery of every event could take under the old
    # rules (each failed delivery counted, and the last one dead-lettered the event).
    deliveries = int(ENV["NATS_MAX_DELIVER"])
    outage = retry_budget() + deliveries * float(ENV["MONGO_TIMEOUT_SECONDS"]) + 5
    await asyncio.sleep(max(0.0, down_at + outage - time.monotonic()))
    stack.spawn("mongo-orders")
    stack.wait_ready("mongo-orders")

    await buy_all(buyer, during)

    async def edits_replicated() -> bool:
        states = [await ticket_state(seller, t["id"]) for t in during]
        return all(s["version"] == 4 and s["orderId"] for s in states)

    await eventually(edits_replicated, timeout=60)
    await assert_consistent(stack, timeout=60)
    assert await dead_letters(stack) == []


async def test_redis_wiped_with_pending_expiries_the_orders_still_end(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller, buyer = await user_factory(), await user_factory()
    tickets = [await seller.sell(f"expiring {i}") for i in range(3)]
    orders = await buy_all(buyer, tickets)
    await expiries_scheduled(stack, len(orders))
    r = redis.asyncio.Redis.from_url(stack.urls["redis"])
    try:
        await r.flushall()  # every pending expiry is gone
    finally:
        await r.aclose()

    async def all_cancelled() -> bool:
        states = [(await buyer.get(f"/api/orders/{o['id']}"))["status"] for o in orders]
        return all(s == "cancelled" for s in states)

    await eventually(all_cancelled, timeout=EXPIRY + SWEEP_GRACE + 10)

    # Their windows closed by payments' own sweep after expiresAt + its grace, then cancelled.
    async def released() -> bool:
        states = [await ticket_state(seller, t["id"]) for t in tickets]
        return all(s["orderId"] is None for s in states)

    await eventually(released)
    await assert_consistent(stack)
    assert await dead_letters(stack) == []


async def test_a_payment_in_time_completes_though_nats_freezes_across_the_expiry(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    """Issue 21, item 2: NATS frozen (SIGSTOP) from 3 s before expiresAt to 15 s after it, the
    buyer pays at -3 s and gets 201. Meanwhile the expiry job fires and payments' sweep comes
    due (both past their graces while payment:created waits in payments' outbox). Once NATS is
    back the order completes and is captured, once. (Before: orders' own sweep cancelled it at
    expiresAt + grace and the authorization was voided.)"""
    seller, buyer = await user_factory(), await user_factory()
    ticket = await seller.sell("paid at the last moment", 30.0)
    [order] = await buy_all(buyer, [ticket])
    expires_at = datetime.fromisoformat(order["expiresAt"].replace("Z", "+00:00")).timestamp()
    await payments_knows(stack, order["id"])
    freeze_at = expires_at - 3
    assert time.time() < freeze_at, "the order took too long to reach payments"
    # The scenario's clock, not a wait for something to happen: the outage starts at -3 s.
    await asyncio.sleep(freeze_at - time.time())
    nats = stack.procs["nats"].popen
    assert nats is not None
    os.kill(nats.pid, signal.SIGSTOP)
    try:
        paid = await buyer.pay(order["id"])
        assert paid.status_code == 201, paid.text
        assert time.time() < expires_at
        await asyncio.sleep(max(0.0, expires_at + 15 - time.time()))
        # Past the expiry's grace and the sweep's, the order is still open: nothing decided it.
        assert (await buyer.get(f"/api/orders/{order['id']}"))["status"] == "created"
    finally:
        os.kill(nats.pid, signal.SIGCONT)

    async def complete() -> bool:
        return (await buyer.get(f"/api/orders/{order['id']}"))["status"] == "complete"

    await eventually(complete, timeout=30)

    async def captured_once() -> bool:
        return await intents_of(stack, order["id"]) == [("succeeded", 3000)]

    await eventually(captured_once, timeout=30)
    await assert_consistent(stack, timeout=60)
    assert await dead_letters(stack) == []
