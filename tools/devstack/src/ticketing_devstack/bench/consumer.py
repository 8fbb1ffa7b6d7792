"""CPU per consumed message: our JetStream consumer against nats-py's own, on one nats-server.

`python -m ticketing_devstack.bench.consumer [--messages 1000] [--rate 100]`: a publisher in a
process of its own sends events at `--rate` a second; the consumer (a `JetStreamBus` with a
handler that does nothing; no tracer is set up in this process) counts its own CPU time until
it has them all. The baseline, in the same run: nats-py's `fetch` loop with an ack per message,
what the bus would cost with nothing of ours around it. Not part of `make bench`'s table: a
figure for work on the bus itself.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ticketing_common.bus.jetstream import JetStreamBus
from ticketing_common.bus.streams import stream_for
from ticketing_common.events import (
    Event,
    OrderCreated,
    OrderStatus,
    OrderTicketRef,
    Subject,
    encode,
    new_event,
)
from ticketing_testing.servers import nats_process

SUBJECT = Subject.ORDER_CREATED


def _event(n: int) -> Event[OrderCreated]:
    return new_event(
        OrderCreated(
            id=f"{n:024x}",
            version=0,
            status=OrderStatus.CREATED,
            user_id="bench",
            expires_at=datetime.now(UTC),
            ticket=OrderTicketRef(id=f"{n:024x}", price=10.0),
        )
    )


def _publish(url: str, messages: int, rate: float) -> None:
    async def run() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        start = time.monotonic()
        for n in range(messages):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            event = _event(n)
            await js.publish(SUBJECT.wire, encode(event), headers={"Nats-Msg-Id": event.id})
        await nc.close()

    asyncio.run(run())


async def _measured(url: str, messages: int, rate: float, consume: Callable[..., Any]) -> float:
    """Microseconds of this process's CPU per message while `consume` takes `messages`."""
    done = asyncio.Event()
    count = [0]

    def got() -> None:
        count[0] += 1
        if count[0] >= messages:
            done.set()

    stop: Callable[[], Awaitable[None]] = await consume(url, got)
    await asyncio.sleep(0.5)  # the consumer is in place before the first message
    publisher = multiprocessing.get_context("spawn").Process(
        target=_publish, args=(url, messages, rate)
    )
    publisher.start()
    started = time.process_time()
    await asyncio.wait_for(done.wait(), timeout=messages / rate + 60)
    used = time.process_time() - started
    publisher.join()
    await stop()
    return used / messages * 1e6


async def _ours(url: str, got: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def handle(event: Event[Any]) -> None:
        got()

    bus = JetStreamBus(url, "bench")
    bus.subscribe(SUBJECT, handle)
    await bus.start()
    await bus.wait_connected(10)
    return bus.close


async def _nats_py(url: str, got: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        SUBJECT.wire,
        durable="bench-raw",
        stream=stream_for(SUBJECT.wire),
        # Only what is published from now on (ours took the earlier run's).
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW),
    )

    async def loop() -> None:
        while True:
            try:
                msgs = await sub.fetch(batch=16, timeout=2)
            except TimeoutError:
                continue
            for msg in msgs:
                await msg.ack()
                got()

    task = asyncio.create_task(loop())

    async def stop() -> None:
        task.cancel()
        await asyncio.wait({task})
        await nc.close()

    return stop


async def compare(messages: int, rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-consumer-") as tmp:
        server = nats_process(Path(tmp) / "nats")
        server.start()
        url = f"nats://{server.url}"
        try:
            # The bus declares the streams; nats-py's consumer then binds to one of them.
            ours = await _measured(url, messages, rate, _ours)
            raw = await _measured(url, messages, rate, _nats_py)
        finally:
            server.stop()
    return {"ours_us": ours, "nats_py_fetch_us": raw}


def main() -> None:
    parser = argparse.ArgumentParser(prog="ticketing_devstack.bench.consumer")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100)
    args = parser.parse_args()
    result = asyncio.run(compare(args.messages, args.rate))
    print(
        f"{args.messages} messages at {args.rate:g}/s, CPU per message: our consumer "
        f"{result['ours_us']:,.0f} us, nats-py fetch + ack {result['nats_py_fetch_us']:,.0f} us"
    )


if __name__ == "__main__":
    main()
