"""Issue 21: a small JetStream store filled with the project's own bus and outbox.

A real nats-server whose store is 2 MiB (`max_file_store`), streams with small byte limits:
orders' ticket:created consumer is down, so TICKETS fills up and refuses publishes; tickets'
writes still succeed, their events wait in the outbox, ORDERS keeps flowing to payments; when
orders comes back it drains the stream, the relay publishes what was refused, and every event
arrives: nothing lost."""

from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from prometheus_client import REGISTRY

from ticketing_common.bus import JetStreamBus
from ticketing_common.events import Event, Subject, TicketCreated, new_event
from ticketing_common.outbox import PENDING, Outbox, OutboxRelay, list_aside
from ticketing_testing.events import order_created
from ticketing_testing.servers import ServerProcess, free_port, nats_args
from ticketing_testing.waiting import eventually, started

pytestmark = pytest.mark.connected

KiB = 1024
STORE = 2 * 1024 * KiB
# Together within the store (the server refuses a stream whose reservation does not fit).
LIMITS = {
    "USERS": 64 * KiB,
    "TICKETS": 64 * KiB,
    "ORDERS": 256 * KiB,
    "EXPIRATION": 64 * KiB,
    "PAYMENTS": 64 * KiB,
    "DEADLETTER": 128 * KiB,
}


@pytest.fixture
def small_nats(tmp_path: Path) -> Any:
    config = tmp_path / "nats.conf"
    config.write_text(f"jetstream {{\n  max_file_store: {STORE}\n  max_memory_store: 1M\n}}\n")
    port = free_port()
    store = tmp_path / "nats"
    store.mkdir()
    server = ServerProcess(
        "nats", [*nats_args(port, store), "-c", str(config)], port, tmp_path / "nats.log"
    )
    server.start()
    yield server
    server.stop()


def refused() -> float:
    labels = {"service": "tickets", "stream": "TICKETS", "reason": "stream_full"}
    return REGISTRY.get_sample_value("ticketing_bus_publish_refused_total", labels) or 0.0


def created(n: int) -> Event[TicketCreated]:
    # About 2 kB each: some 25 fill TICKETS' 64 KiB.
    title = f"show {n} " + "x" * 2000
    return new_event(TicketCreated(id=f"t{n}", version=0, title=title, price=10.0, user_id="u"))


async def test_a_full_stream_waits_in_the_outbox_and_nothing_is_lost(
    small_nats: ServerProcess, mongo: Any
) -> None:
    url = f"nats://{small_nats.url}"
    db = mongo["tickets"]
    tickets_bus = await started(JetStreamBus(url, "tickets", stream_max_bytes=LIMITS))
    relay = OutboxRelay(tickets_bus, db, ["tickets"], sweep_seconds=0.1)
    relay.start()
    outbox = Outbox(db, relay)
    orders_bus = await started(JetStreamBus(url, "orders", stream_max_bytes=LIMITS))
    payments = JetStreamBus(url, "payments", stream_max_bytes=LIMITS)
    paid: list[str] = []

    async def on_order(event: Event[Any]) -> None:
        paid.append(event.data.id)

    payments.subscribe(Subject.ORDER_CREATED, on_order)
    await started(payments)
    orders: JetStreamBus | None = None
    try:
        before = refused()
        events = [created(n) for n in range(60)]
        for event in events:  # every write succeeds, stream full or not
            await outbox["tickets"].insert_one({"_id": ObjectId(), "n": event.data.id}, event)

        async def full() -> bool:
            return refused() > before and await db["tickets"].count_documents({PENDING: True}) > 0

        await eventually(full, timeout=10)
        assert await list_aside(db) == []  # a dependency down: nothing set aside
        # Another stream keeps flowing: an order reaches payments.
        await orders_bus.publish(order_created(order_id="o1"))
        await eventually(lambda: paid == ["o1"], timeout=10)

        orders = JetStreamBus(url, "orders", stream_max_bytes=LIMITS)
        seen: set[str] = set()

        async def on_ticket(event: Event[Any]) -> None:
            seen.add(event.id)  # idempotent: a repeat changes nothing

        orders.subscribe(Subject.TICKET_CREATED, on_ticket)
        await started(orders)

        async def drained() -> bool:
            pending: int = await db["tickets"].count_documents({PENDING: True})
            return pending == 0

        await eventually(drained, timeout=30)
        await eventually(lambda: seen == {e.id for e in events}, timeout=30)
        assert await list_aside(db) == []
    finally:
        await relay.close()
        for bus in (orders, payments, orders_bus, tickets_bus):
            if bus is not None:
                await bus.close()
