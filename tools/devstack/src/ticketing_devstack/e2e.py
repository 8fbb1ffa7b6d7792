"""What the end-to-end and fault tests do to a running stack: wait, read the bus, check it.

Everything goes through the gateway or reads the servers directly (JetStream, the databases);
nothing reaches into a service's process.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import nats.js.api
import redis.asyncio
from pymongo import AsyncMongoClient

from ticketing_devstack.invariants import mongo_urls, problems, snapshot
from ticketing_devstack.people import User
from ticketing_devstack.stack import Stack
from ticketing_testing import waiting
from ticketing_testing.servers import free_port

T = TypeVar("T")

E2E_STACK = "E2E_STACK"


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    """`ticketing_testing.waiting.eventually` at the stack's pace, where an HTTP error (a
    process restarting) is "not yet" too."""
    return await waiting.eventually(check, timeout, interval=0.05, http_errors=True)


async def assert_consistent(stack: Stack, timeout: float = 30.0) -> None:
    """Once quiet, every service agrees: nothing lost, nothing applied twice."""
    last: list[str] = []

    async def consistent() -> bool:
        nonlocal last
        last = problems(await snapshot(mongo_urls(stack.urls), stack.urls.get("stripe")))
        return not last

    try:
        await eventually(consistent, timeout)
    except TimeoutError:
        raise AssertionError("inconsistent: " + "; ".join(last[:10])) from None


async def stream_events(stack: Stack, subject: str) -> list[dict[str, Any]]:
    """Every message on `subject` (wildcards allowed), read back from JetStream."""
    nc = await nats.connect(stack.urls["nats"])
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            subject,
            config=nats.js.api.ConsumerConfig(
                ack_policy=nats.js.api.AckPolicy.NONE, inactive_threshold=5.0
            ),
        )
        out: list[dict[str, Any]] = []
        while True:
            try:
                msgs = await sub.fetch(batch=500, timeout=1)
            except TimeoutError:  # nats-py raises its own subclass or the builtin one
                break
            for msg in msgs:
                try:
                    out.append({**json.loads(msg.data), "wire": msg.subject})
                except ValueError:
                    out.append({"wire": msg.subject, "raw": msg.data})
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def observing(
    stack: Stack, subject: str
) -> AsyncIterator[Callable[[], Awaitable[list[dict[str, Any]]]]]:
    """Keep every message published on `subject` from now on, and read them back when asked.

    The event streams retain a message only while some consumer has not acknowledged it
    (interest retention): once every service has its event, reading the stream afterwards
    finds nothing. A durable of the test's own, made before the traffic, is one more interest
    that holds each message until it is read (then deleted with the durable).
    """
    nc = await nats.connect(stack.urls["nats"])
    js = nc.jetstream()
    stream = await js.find_stream_name_by_subject(subject)
    durable = f"e2e-observer-{os.getpid()}-{free_port()}"
    await js.add_consumer(
        stream,
        nats.js.api.ConsumerConfig(
            durable_name=durable,
            filter_subject=subject,
            deliver_policy=nats.js.api.DeliverPolicy.NEW,
            ack_policy=nats.js.api.AckPolicy.EXPLICIT,
        ),
    )
    sub = await js.pull_subscribe_bind(durable, stream)

    async def seen() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            try:
                msgs = await sub.fetch(batch=500, timeout=1)
            except TimeoutError:
                return out
            for msg in msgs:
                out.append({**json.loads(msg.data), "wire": msg.subject})
                await msg.ack()

    try:
        yield seen
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, durable)
        await nc.close()


async def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    """Every dead letter of every service."""
    return await stream_events(stack, "deadletter.>")


async def buy_until_answered(buyer: User, ticket_id: str, timeout: float = 60) -> httpx.Response:
    """A client that retries while orders is unreachable (502/503) or not yet aware (404)."""

    async def attempt() -> httpx.Response | None:
        res = await buyer.order(ticket_id)
        return None if res.status_code in (404, 502, 503) else res

    res: httpx.Response = await eventually(attempt, timeout=timeout)
    return res


async def buy_all(buyer: User, tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`buyer`'s orders of `tickets`, one after the other as `buy_until_answered` places them;
    each must be answered 201."""
    orders = []
    for ticket in tickets:
        res = await buy_until_answered(buyer, ticket["id"])
        assert res.status_code == 201, res.text
        orders.append(res.json())
    return orders


async def intents_of(stack: Stack, order_id: str) -> list[tuple[str, int]]:
    """(status, amount received) of each PaymentIntent Stripe (the fake) holds for the order."""
    async with httpx.AsyncClient() as http:
        res = await http.get(
            f"{stack.urls['stripe']}/v1/payment_intents",
            params={"limit": 100},
            headers={"Authorization": "Bearer sk_test_local"},
        )
    return [
        (pi["status"], pi["amount_received"])
        for pi in res.json()["data"]
        if pi["metadata"].get("orderId") == order_id
    ]


async def payments_knows(stack: Stack, order_id: str) -> None:
    """Wait until payments' replica has the order (it learns of it from order:created)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_urls(stack.urls)["payments"])
    try:

        async def replicated() -> bool:
            return await client["payments"]["orders"].find_one({"_id": order_id}) is not None

        await eventually(replicated)
    finally:
        await client.close()


async def expiries_scheduled(stack: Stack, count: int) -> None:
    """Wait until RQ holds at least `count` jobs (expiration consumed their order:created)."""
    r = redis.asyncio.Redis.from_url(stack.urls["redis"])
    try:

        async def scheduled() -> bool:
            return len([k async for k in r.scan_iter("rq:job:*")]) >= count

        await eventually(scheduled)
    finally:
        await r.aclose()


async def ticket_state(user: User, ticket_id: str) -> dict[str, Any]:
    ticket: dict[str, Any] = await user.get(f"/api/tickets/{ticket_id}")
    return ticket


# Every user of a test stack signs up and in from one address (loopback, through the gateway):
# auth's limits per address are for the Internet, not for twenty test buyers in one second.
TEST_RATE_LIMITS = {
    f"RATE_LIMIT_{limit}": "10000/minute"
    for limit in (
        "SIGNIN_PER_ADDRESS",
        "SIGNIN_PER_EMAIL_AND_ADDRESS",
        "SIGNUP_PER_ADDRESS",
        "SIGNUP_PER_EMAIL",
    )
}


@contextlib.contextmanager
def local_stack(base: Path, env: dict[str, str]) -> Iterator[Stack]:
    """The whole system on free ports under `base`, on its own servers (whatever MONGO_URL,
    NATS_URL, REDIS_URL or STRIPE_KEY the caller's environment holds), stopped afterwards.

    With `E2E_STACK` set, a system already running elsewhere instead (docker-compose.test.yml):
    its URLs as JSON, the keys of `Stack.urls` (`gateway`, `nats`, `redis`, `stripe`, and
    `mongo`, itself JSON: each service's MongoDB URL). Nothing is started or stopped then, and
    `env` is that system's business (the compose file sets the same values)."""
    remote = os.environ.get(E2E_STACK)
    if remote:
        stack = Stack(base / "data", env={})
        stack.urls = json.loads(remote)
        yield stack
        return
    full = {**TEST_RATE_LIMITS, **os.environ, **env}
    for key in ("MONGO_URL", "NATS_URL", "REDIS_URL", "STRIPE_KEY", "STRIPE_PUBLISHABLE_KEY"):
        full.pop(key, None)
    stack = Stack(base / "data", gateway_port=free_port(), env=full, log_dir=base / "logs")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@contextlib.asynccontextmanager
async def users_of(stack: Stack) -> AsyncIterator[Callable[[], Awaitable[User]]]:
    """Sign up new users through the gateway; their HTTP clients close afterwards."""
    users: list[User] = []

    async def make() -> User:
        user = await User(stack.urls["gateway"]).signup()
        users.append(user)
        return user

    try:
        yield make
    finally:
        for user in users:
            await user.__aexit__()
