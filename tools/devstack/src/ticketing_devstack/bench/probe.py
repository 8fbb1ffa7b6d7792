"""The bus probe: a process of its own that timestamps events as NATS delivers them.

A plain NATS subscription (not a JetStream consumer: nothing is stored or acknowledged) on the
subjects the services publish, so measuring adds no load to the services. Each event is kept as
(subject, the record id it concerns, monotonic time, wall time); CLOCK_MONOTONIC is one clock for
every process of the machine, so these times compare with the bench's own.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import nats

# The wire subjects, and the field of `data` that names what the bench waits for.
KEYS = {"ticket.updated": "orderId", "order.cancelled": "id", "expiration.complete": "orderId"}


@dataclass(frozen=True)
class Seen:
    subject: str
    key: str
    monotonic: float
    wall: float


def _key(subject: str, payload: bytes) -> str | None:
    try:
        data: dict[str, Any] = json.loads(payload)["data"]
    except (ValueError, KeyError, TypeError):
        return None
    value = data.get(KEYS[subject])
    return value if isinstance(value, str) else None


async def _listen(url: str, conn: Connection) -> None:
    seen: list[tuple[str, str, float, float]] = []

    async def on_message(msg: Any) -> None:
        now, wall = time.monotonic(), time.time()
        key = _key(msg.subject, msg.data)
        if key is not None:
            seen.append((msg.subject, key, now, wall))

    nc = await nats.connect(url)
    for subject in KEYS:
        await nc.subscribe(subject, cb=on_message)
    await nc.flush()
    conn.send("ready")
    while True:
        await asyncio.sleep(0.05)
        if conn.poll():
            order = conn.recv()
            conn.send(seen[:])
            seen.clear()
            if order == "stop":
                break
    await nc.close()


def _main(url: str, conn: Connection) -> None:
    asyncio.run(_listen(url, conn))


class Probe:
    """Start with `with Probe(url) as probe:`; `collect()` hands over what was seen since the
    last call."""

    def __init__(self, nats_url: str) -> None:
        self.url = nats_url
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_main, args=(nats_url, child), daemon=True)
        self.seen: list[Seen] = []

    def __enter__(self) -> Probe:
        self._proc.start()
        if not self._conn.poll(30) or self._conn.recv() != "ready":
            raise RuntimeError("the bus probe did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._proc.is_alive():
            self._ask("stop")
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()

    def _ask(self, order: str) -> list[Seen]:
        self._conn.send(order)
        batch = [Seen(*row) for row in self._conn.recv()]
        self.seen.extend(batch)
        return batch

    def collect(self) -> list[Seen]:
        self._ask("collect")
        return self.seen

    def first(self, subject: str) -> dict[str, Seen]:
        """The first time each key was seen on `subject` (a re-published event comes later)."""
        firsts: dict[str, Seen] = {}
        for seen in self.collect():
            if seen.subject == subject and seen.key not in firsts:
                firsts[seen.key] = seen
        return firsts
