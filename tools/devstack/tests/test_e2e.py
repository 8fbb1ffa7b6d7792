"""End to end: the real processes on free ports, driven only over HTTP through the gateway.

One stack serves the whole module; each fault test leaves it running and consistent. After
every test the databases are checked across services (`checks.problems`).

With `E2E_STACK` set (docker-compose.test.yml does), the tests drive that running system
instead, on real MongoDB; those marked `local_processes` kill or restart processes of a local
stack and are deselected there (`-m "not local_processes"`).
"""

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import nats
import pytest

from ticketing_devstack.e2e import (
    assert_consistent,
    buy_all,
    buy_until_answered,
    dead_letters,
    eventually,
    expiries_scheduled,
    intents_of,
    local_stack,
    observing,
    payments_knows,
    stream_events,
    ticket_state,
)
from ticketing_devstack.invariants import mongo_urls
from ticketing_devstack.people import User
from ticketing_devstack.stack import Stack

pytestmark = pytest.mark.connected

EXPIRY = 6  # seconds: short, so the expiry test is quick (a buyer may pay until expiresAt)


ENV = {
    "ORDER_EXPIRATION_SECONDS": str(EXPIRY),
    "JWT_KEY": "e2e-jwt-key-0123456789abcdef0123456789",
    # A delivery lost with a killed process returns after 5 s; an event waiting for it
    # retries for ~25 s (0.1 s doubling), which also keeps the poison test short.
    "NATS_ACK_WAIT_SECONDS": "5",
    "NATS_MAX_DELIVER": "9",
    "NATS_RETRY_DELAY_SECONDS": "0.1",
    "OUTBOX_SWEEP_SECONDS": "0.5",
    "LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("stack"), ENV) as stack:
        yield stack


POISON = b"\x00 not an event"


@pytest.fixture(autouse=True)
async def no_unexpected_dead_letters(stack: Stack) -> AsyncIterator[None]:
    """After every test: the only dead letters are the poison test's own."""
    yield
    letters = await dead_letters(stack)
    assert [d for d in letters if d.get("raw") != POISON] == []


async def order_when_replicated(buyer: User, ticket_id: str) -> httpx.Response:
    """Order as soon as orders has seen the ticket (its replica is fed by events)."""

    async def attempt() -> httpx.Response | None:
        res = await buyer.order(ticket_id)
        return None if res.status_code == 404 else res

    res: httpx.Response = await eventually(attempt)
    return res


# --- the journey ---------------------------------------------------------------------------------


async def test_sell_buy_pay_complete(stack: Stack, user_factory: Callable[[], Any]) -> None:
    seller, buyer = await user_factory(), await user_factory()
    ticket = await seller.sell("Jazz night", 19.99)
    assert ticket["id"] in [t["id"] for t in await buyer.get("/api/tickets")]

    res = await order_when_replicated(buyer, ticket["id"])
    assert res.status_code == 201, res.text
    order = res.json()
    assert order["status"] == "created"
    assert order["ticket"]["price"] == 19.99

    async def reserved() -> bool:
        return (await ticket_state(buyer, ticket["id"]))["orderId"] == order["id"]

    await eventually(reserved)
    assert ticket["id"] not in [t["id"] for t in await buyer.get("/api/tickets")]

    async def payable() -> httpx.Response | None:
        res = await buyer.pay(order["id"])
        return None if res.status_code == 404 else res

    paid = await eventually(payable)
    assert paid.status_code == 201, paid.text

    async def complete() -> bool:
        return (await buyer.get(f"/api/orders/{order['id']}"))["status"] == "complete"

    await eventually(complete)
    assert (await buyer.http.delete(f"/api/orders/{order['id']}")).status_code == 400
    assert (await buyer.pay(order["id"])).status_code == 400  # never twice

    async def captured() -> bool:
        # Paying authorized the card; payments captures it on order:completed.
        stripe = await buyer.http.get(
            f"{stack.urls['stripe']}/v1/payment_intents",
            params={"limit": 100},
            headers={"Authorization": "Bearer sk_test_local"},
        )
        ours = [pi for pi in stripe.json()["data"] if pi["metadata"].get("orderId") == order["id"]]
        return [(pi["status"], pi["amount_received"]) for pi in ours] == [("succeeded", 1999)]

    await eventually(captured)
    await assert_consistent(stack)


async def test_anonymous_and_other_users_are_refused_between_signed_in_ones(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    """Through the gateway, interleaved: a browser without a session, and one with another
    user's, never act as the user who signed in last."""
    seller, buyer = await user_factory(), await user_factory()
    ticket = await seller.sell()
    order = (await order_when_replicated(buyer, ticket["id"])).json()
    anonymous = User(stack.urls["gateway"])
    try:
        needs_a_user = [
            ("POST", "/api/tickets", {"title": "t", "price": 5}),
            ("PUT", f"/api/tickets/{ticket['id']}", {"title": "t", "price": 5}),
            ("POST", "/api/orders", {"ticketId": ticket["id"]}),
            ("GET", "/api/orders", None),
            ("GET", f"/api/orders/{order['id']}", None),
            ("DELETE", f"/api/orders/{order['id']}", None),
            ("POST", "/api/payments", {"orderId": order["id"], "token": "tok_visa"}),
        ]
        for method, path, body in needs_a_user:
            # Each anonymous request right after a signed-in one, through the same gateway.
            assert (await seller.get("/api/users/currentuser"))["currentUser"]["id"] == seller.id
            res = await anonymous.http.request(method, path, json=body)
            assert res.status_code == 401, (method, path, res.text)
            assert res.json() == {"errors": [{"message": "Not authorized"}]}
            assert (await buyer.get("/api/users/currentuser"))["currentUser"]["id"] == buyer.id
            assert (await anonymous.get("/api/users/currentuser")) == {"currentUser": None}
        # The other user: the seller cannot see, cancel or pay the buyer's order; the buyer
        # cannot edit the seller's ticket.
        others = [
            (seller, "GET", f"/api/orders/{order['id']}", None),
            (seller, "DELETE", f"/api/orders/{order['id']}", None),
            (seller, "POST", "/api/payments", {"orderId": order["id"], "token": "tok_visa"}),
            (buyer, "PUT", f"/api/tickets/{ticket['id']}", {"title": "mine", "price": 1}),
        ]
        for user, method, path, body in others:

            async def refused(
                user: User = user, method: str = method, path: str = path, body: Any = body
            ) -> bool:
                # 404 only while payments has not yet replicated the order.
                res = await user.http.request(method, path, json=body)
                assert res.status_code in (401, 404), (method, path, res.text)
                return res.status_code == 401

            await eventually(refused)
        assert [o["id"] for o in await seller.get("/api/orders")] == []
        assert (await buyer.get(f"/api/orders/{order['id']}"))["status"] == "created"
        assert (await seller.get(f"/api/tickets/{ticket['id']}"))["title"] == ticket["title"]
    finally:
        await anonymous.__aexit__()
    assert (await buyer.http.delete(f"/api/orders/{order['id']}")).status_code == 204
    await assert_consistent(stack)


async def test_each_services_documents_are_reachable_through_the_gateway(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.urls["gateway"], timeout=10) as client:
        for prefix, title in [
            ("/api/users", "ticketing-auth"),
            ("/api/tickets", "ticketing-tickets"),
            ("/api/orders", "ticketing-orders"),
            ("/api/payments", "ticketing-payments"),
        ]:
            document = await client.get(f"{prefix}/openapi.json")
            assert document.json()["info"]["title"] == title
            docs = await client.get(f"{prefix}/docs")
            assert docs.status_code == 200
            assert f"{prefix}/openapi.json" in docs.text


async def test_cancel_releases_the_ticket(stack: Stack, user_factory: Callable[[], Any]) -> None:
    seller, buyer, next_buyer = await user_factory(), await user_factory(), await user_factory()
    ticket = await seller.sell()
    order = (await order_when_replicated(buyer, ticket["id"])).json()
    res = await buyer.http.delete(f"/api/orders/{order['id']}")
    assert res.status_code == 204

    async def released() -> bool:
        state = await ticket_state(seller, ticket["id"])
        return state["orderId"] is None and state["version"] == 2

    await eventually(released)
    assert (await next_buyer.order(ticket["id"])).status_code == 201
    await assert_consistent(stack)


async def test_an_unpaid_order_expires_and_the_ticket_comes_back(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller, buyer = await user_factory(), await user_factory()
    ticket = await seller.sell()
    order = (await order_when_replicated(buyer, ticket["id"])).json()
    created = time.monotonic()

    async def cancelled() -> bool:
        return (await buyer.get(f"/api/orders/{order['id']}"))["status"] == "cancelled"

    await eventually(cancelled, timeout=EXPIRY + 15)
    assert time.monotonic() - created >= EXPIRY - 1

    async def listed_again() -> bool:
        return ticket["id"] in [t["id"] for t in await buyer.get("/api/tickets")]

    await eventually(listed_again)
    res = await buyer.pay(order["id"])
    assert res.status_code == 400
    await assert_consistent(stack)


async def replicated(stack: Stack, ticket_id: str, version: int = 0) -> None:
    """Wait until orders' replica has the ticket at `version` (read from its database)."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_urls(stack.urls)["orders"])
    try:

        async def seen() -> bool:
            doc = await client["orders"]["tickets"].find_one({"_id": ticket_id})
            return doc is not None and doc["version"] >= version

        await eventually(seen)
    finally:
        await client.close()


async def test_twenty_buyers_one_ticket_exactly_one_wins(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller = await user_factory()
    buyers = [await user_factory() for _ in range(20)]
    ticket = await seller.sell()
    await replicated(stack, ticket["id"])
    results = await asyncio.gather(*(b.order(ticket["id"]) for b in buyers))
    assert sorted(r.status_code for r in results) == [201] + [400] * 19
    losers = [r.json() for r in results if r.status_code == 400]
    assert all(r == {"errors": [{"message": "Ticket is already reserved"}]} for r in losers)
    await assert_consistent(stack)


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.local_processes
async def test_kill_9_orders_mid_stream_loses_nothing(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller = await user_factory()
    buyers = [await user_factory() for _ in range(12)]
    tickets = [await seller.sell(f"stream {i}") for i in range(12)]
    for t in tickets:
        await replicated(stack, t["id"])
    accepted: dict[str, str] = {}

    async def stream() -> None:
        for buyer, ticket in zip(buyers, tickets, strict=True):
            res = await buy_until_answered(buyer, ticket["id"])
            if res.status_code == 201:
                accepted[ticket["id"]] = res.json()["id"]

    task = asyncio.create_task(stream())
    await eventually(lambda: asyncio.sleep(0, len(accepted) >= 4))
    stack.kill("orders", signal.SIGKILL)
    stack.restart("orders")
    await task
    assert len(accepted) >= 11  # at most the one in flight at the kill may have lost its answer

    async def reserved_by_accepted() -> bool:
        for ticket_id, order_id in accepted.items():
            if (await ticket_state(seller, ticket_id))["orderId"] != order_id:
                return False
        return True

    await eventually(reserved_by_accepted)
    await assert_consistent(stack)


@pytest.mark.local_processes
async def test_nats_restart_during_traffic_services_recover_by_themselves(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    pids = {name: stack.procs[name].popen.pid for name in ("auth", "tickets", "orders", "payments")}  # type: ignore[union-attr]
    seller, buyer = await user_factory(), await user_factory()
    sold: list[dict[str, Any]] = []

    async def traffic() -> None:
        for i in range(10):
            sold.append(await seller.sell(f"during restart {i}"))

    task = asyncio.create_task(traffic())
    await eventually(lambda: asyncio.sleep(0, len(sold) >= 3))
    stack.restart("nats")
    await task
    for ticket in sold:
        res = await buy_until_answered(buyer, ticket["id"])
        assert res.status_code == 201, res.text
    assert pids == {n: stack.procs[n].popen.pid for n in pids}  # type: ignore[union-attr]
    await assert_consistent(stack)


@pytest.mark.local_processes
async def test_a_ticket_created_while_nats_is_down_reaches_orders_when_it_is_back(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller, buyer = await user_factory(), await user_factory()
    stack.kill("nats")
    try:
        ticket = await seller.sell("offline sale")  # the API answers with the bus down
    finally:
        stack.spawn("nats")
        stack.wait_ready("nats")
    res = await buy_until_answered(buyer, ticket["id"])
    assert res.status_code == 201, res.text
    await assert_consistent(stack)


@pytest.mark.local_processes
async def test_a_payment_and_a_cancel_while_nats_is_down_never_charge_a_cancelled_order(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    """Issue 8, item 5: NATS paused, POST /api/payments 201, DELETE 204. Orders decided first
    (cancelled), so once NATS is back payments voids the authorization: nothing is captured."""
    seller, buyer = await user_factory(), await user_factory()
    ticket = await seller.sell("paid while the bus was down", 12.5)
    order = (await order_when_replicated(buyer, ticket["id"])).json()
    await payments_knows(stack, order["id"])
    stack.kill("nats")
    try:
        assert (await buyer.pay(order["id"])).status_code == 201
        assert (await buyer.http.delete(f"/api/orders/{order['id']}")).status_code == 204
    finally:
        stack.spawn("nats")
        stack.wait_ready("nats")

    async def voided() -> bool:
        return await intents_of(stack, order["id"]) == [("canceled", 0)]

    await eventually(voided, timeout=60)
    assert (await buyer.get(f"/api/orders/{order['id']}"))["status"] == "cancelled"
    await assert_consistent(stack)


@pytest.mark.local_processes
async def test_pending_expirations_survive_a_redis_restart(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller, buyer = await user_factory(), await user_factory()
    orders = await buy_all(buyer, [await seller.sell(f"expiring {i}") for i in range(3)])
    await expiries_scheduled(stack, len(orders))
    stack.restart("redis")

    async def all_cancelled() -> bool:
        states = [(await buyer.get(f"/api/orders/{o['id']}"))["status"] for o in orders]
        return all(s == "cancelled" for s in states)

    await eventually(all_cancelled, timeout=EXPIRY + 30)
    await assert_consistent(stack)


async def test_a_poison_message_is_dead_lettered_and_the_flow_continues(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    nc = await nats.connect(stack.urls["nats"])
    try:
        await nc.jetstream().publish(
            "ticket.created", POISON, headers={"Nats-Msg-Id": f"poison-{time.time()}"}
        )
    finally:
        await nc.close()

    async def dead_lettered() -> bool:
        letters = await stream_events(stack, "deadletter.orders.>")
        return any(e.get("raw") == POISON for e in letters)

    await eventually(dead_lettered, timeout=60)
    seller, buyer = await user_factory(), await user_factory()
    ticket = await seller.sell("after the poison")
    res = await buy_until_answered(buyer, ticket["id"])
    assert res.status_code == 201
    await assert_consistent(stack)


@pytest.mark.local_processes
async def test_two_orders_processes_handle_every_event_once(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    stack.clone("orders", "orders-2")
    try:
        async with observing(stack, "order.>") as seen:
            seller = await user_factory()
            buyers = [await user_factory() for _ in range(8)]
            tickets = [await seller.sell(f"twin {i}") for i in range(8)]
            orders = []
            for buyer, ticket in zip(buyers, tickets, strict=True):
                res = await buy_until_answered(buyer, ticket["id"])
                assert res.status_code == 201
                orders.append((buyer, res.json()))
            for buyer, order in orders[:4]:
                assert (await buyer.http.delete(f"/api/orders/{order['id']}")).status_code == 204

            async def settled() -> bool:
                states = [await ticket_state(seller, t["id"]) for t in tickets]
                return [s["version"] for s in states] == [2] * 4 + [1] * 4

            await eventually(settled)
            events = await seen()
        ours = {o["id"] for _, o in orders}
        created = [e["data"]["id"] for e in events if e["wire"] == "order.created"]
        cancelled = [e["data"]["id"] for e in events if e["wire"] == "order.cancelled"]
        assert sorted(i for i in created if i in ours) == sorted(ours)
        assert sorted(i for i in cancelled if i in ours) == sorted(o["id"] for _, o in orders[:4])
        await assert_consistent(stack)
    finally:
        stack.kill("orders-2")
        del stack.procs["orders-2"]


@pytest.mark.local_processes
async def test_data_survives_database_restarts(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    seller = await user_factory()
    ticket = await seller.sell("kept on disk")
    for name in ("mongo-auth", "mongo-tickets"):
        stack.restart(name)

    async def signed_in_again() -> bool:
        res = await seller.http.post(
            "/api/users/signin", json={"email": seller.email, "password": "password123"}
        )
        return res.status_code == 200

    await eventually(signed_in_again)
    assert (await ticket_state(seller, ticket["id"]))["title"] == "kept on disk"
    await assert_consistent(stack)


@pytest.mark.local_processes
async def test_stripe_failing_captures_does_not_keep_another_buyer_from_paying(
    stack: Stack, user_factory: Callable[[], Any]
) -> None:
    """Issue 21, item 3, on the real processes: the fake Stripe fails every capture, so
    payments holds the first buyer's order:completed. Its order:created consumer does not need
    Stripe and goes on: a second buyer orders and pays within 5 s (before: 404 on pay for as long
    as Stripe failed). Once Stripe is back, both are captured."""
    seller, first, second = await user_factory(), await user_factory(), await user_factory()
    tickets = [await seller.sell(f"capture held {i}", 15.0) for i in range(2)]
    async with httpx.AsyncClient(base_url=stack.urls["stripe"]) as stripe:
        await stripe.post("/_fake/fail", json={"count": 1000, "status": 500, "path": "/capture"})
        try:
            held = (await order_when_replicated(first, tickets[0]["id"])).json()
            await payments_knows(stack, held["id"])
            assert (await first.pay(held["id"])).status_code == 201

            async def completed() -> bool:
                return (await first.get(f"/api/orders/{held['id']}"))["status"] == "complete"

            await eventually(completed)

            async def capture_held() -> bool:
                async with httpx.AsyncClient() as http:
                    text = (await http.get(f"{stack.urls['payments']}/metrics")).text
                return any(
                    line.startswith("ticketing_bus_deliveries_held{")
                    and 'dependency="stripe"' in line
                    and not line.endswith(" 0.0")
                    for line in text.splitlines()
                )

            await eventually(capture_held)
            started = time.monotonic()
            order = (await order_when_replicated(second, tickets[1]["id"])).json()

            async def payable() -> httpx.Response | None:
                res = await second.pay(order["id"])
                return None if res.status_code == 404 else res

            paid = await eventually(payable, timeout=5)
            assert paid.status_code == 201, paid.text
            assert time.monotonic() - started < 5
            assert await intents_of(stack, held["id"]) == [("requires_capture", 0)]
        finally:
            await stripe.post("/_fake/fail", json={"count": 0})

    async def both_captured() -> bool:
        intents = [await intents_of(stack, o) for o in (held["id"], order["id"])]
        return intents == [[("succeeded", 1500)]] * 2

    await eventually(both_captured, timeout=30)
    await assert_consistent(stack)
