"""Dead letters can be seen and re-driven to the one consumer that dead-lettered them."""

import asyncio
import collections
import io
import os
import sys
from collections.abc import Callable
from typing import Any

import nats
import pytest

from ticketing_common import admin as command
from ticketing_common.bus import Bus, JetStreamBus
from ticketing_common.events import Event, Subject, TicketCreated, new_event
from ticketing_testing.servers import ServerProcess
from ticketing_testing.waiting import eventually, started

BusFactory = Callable[..., Bus]


def ticket(n: int = 1) -> Event[TicketCreated]:
    return new_event(TicketCreated(id=f"t{n}", version=0, title="show", price=10.0, user_id="u"))


class Buggy:
    """A handler with a bug for some events, until it is fixed."""

    def __init__(self, bad: set[str] | None = None) -> None:
        self.fixed = False
        self.bad = bad  # None: every event
        self.applied: collections.Counter[str] = collections.Counter()

    async def __call__(self, event: Event[Any]) -> None:
        if not self.fixed and (self.bad is None or event.data.id in self.bad):
            raise KeyError("a bug in the handler")
        self.applied[event.id] += 1


async def test_a_dead_letter_is_redriven_to_its_consumer_only_and_applied_once(
    make_bus: BusFactory,
) -> None:
    orders, payments, producer = (
        make_bus("orders", max_deliver=2),
        make_bus("payments"),
        make_bus("tickets"),
    )
    handler, other = Buggy(), Buggy()
    other.fixed = True
    orders.subscribe(Subject.TICKET_CREATED, handler)
    payments.subscribe(Subject.TICKET_CREATED, other)
    for bus in (orders, payments, producer):
        await started(bus)
    event = ticket(1)
    await producer.publish(event)

    async def dead_lettered() -> list[Any]:
        return await orders.dead_letters()

    [letter] = await eventually(dead_lettered, timeout=10)
    assert (letter.durable, letter.subject, letter.service) == (
        "orders-ticket-created",
        "ticket.created",
        "orders",
    )
    assert letter.seq > 0
    assert "a bug in the handler" in letter.error
    assert other.applied == {event.id: 1}

    handler.fixed = True  # the cause is fixed (a new release)
    first, second = await asyncio.gather(orders.redrive(letter.seq), orders.redrive(letter.seq))
    assert letter.seq in {r.seq for r in (first, second) if r is not None}
    assert await orders.redrive(letter.seq) is None  # nothing left to re-drive
    await eventually(lambda: handler.applied[event.id] == 1)
    assert await orders.dead_letters() == []

    # A later event goes through both consumers: whatever the re-drives caused has landed.
    later = ticket(2)
    await producer.publish(later)
    await eventually(lambda: handler.applied[later.id] == 1 and other.applied[later.id] == 1)
    assert handler.applied[event.id] == 1  # applied once, though re-driven twice
    assert other.applied[event.id] == 1  # the other service did not get it again


@pytest.mark.connected
async def test_the_command_lists_shows_and_redrives(nats_server: ServerProcess) -> None:
    url = f"nats://{nats_server.url}"
    orders = JetStreamBus(url, "orders", max_deliver=1, retry_delay=0.05)
    payments = JetStreamBus(url, "payments", max_deliver=1, retry_delay=0.05)
    orders_handler, payments_handler = Buggy({"t1", "t2"}), Buggy({"t3"})
    orders.subscribe(Subject.TICKET_CREATED, orders_handler)
    payments.subscribe(Subject.TICKET_CREATED, payments_handler)
    nc = await nats.connect(url)
    try:
        for bus in (orders, payments):
            await started(bus)
        events = [ticket(n) for n in (1, 2, 3)]
        for event in events:
            await orders.publish(event)
        js = nc.jetstream()

        async def three_dead() -> list[Any]:
            letters = await command.list_dead_letters(js)
            return letters if len(letters) == 3 else []

        letters = await eventually(three_dead, timeout=10)
        ours = [d for d in letters if d.durable == "orders-ticket-created"]
        assert [d.subject for d in ours] == ["ticket.created"] * 2
        assert await command.list_dead_letters(js, consumer="orders-ticket-created") == ours

        # `list` through the real entry point, the URL from the environment.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ticketing_common.admin",
            "list",
            "--consumer",
            "orders-ticket-created",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "NATS_URL": url},
        )
        stdout, _ = await proc.communicate()
        assert proc.returncode == 0
        text = stdout.decode()
        assert "2 dead letter(s)" in text
        for letter in ours:
            assert f"{letter.seq:>6}  " in text
        assert "KeyError" in text
        assert "payments-ticket-created" not in text

        async def run(*argv: str) -> tuple[int, str]:
            out = io.StringIO()
            status = await asyncio.to_thread(command.main, ["--nats-url", url, *argv], out=out)
            return status, out.getvalue()

        status, text = await run("show", str(ours[0].seq), "--nats-url", url)
        assert status == 0
        assert "consumer:   orders-ticket-created" in text
        assert f'"id": "{events[0].id}"' in text  # the payload, pretty-printed

        orders_handler.fixed = True
        status, text = await run("redrive", "--consumer", "orders-ticket-created", "--all")
        assert (status, text.splitlines()[-1]) == (0, "2 dead letter(s) re-driven")
        status, text = await run("redrive", str(ours[0].seq))
        assert status == 1
        assert "no dead letter" in text

        await eventually(
            lambda: orders_handler.applied == {events[0].id: 1, events[1].id: 1, events[2].id: 1}
        )
        barrier = ticket(4)
        await orders.publish(barrier)
        await eventually(
            lambda: orders_handler.applied[barrier.id] == payments_handler.applied[barrier.id] == 1
        )
        # payments' own dead letter is still there, and payments got nothing re-driven.
        [left] = await command.list_dead_letters(js)
        assert left.durable == "payments-ticket-created"
        assert payments_handler.applied == {events[0].id: 1, events[1].id: 1, barrier.id: 1}
        assert (await run("show", "999"))[0] == 1
    finally:
        await orders.close()
        await payments.close()
        await nc.close()
