"""The outbox: events written with the state change are published, even across outages."""

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Event, Subject, TicketCreated, TicketUpdated, new_event
from ticketing_common.outbox import OUTBOX, PENDING, OutboxRelay, outbox_fields, with_outbox

COLL = "tickets"


def created(version: int = 0) -> Event[Any]:
    return new_event(TicketCreated(id="t1", version=version, title="a", price=1.0, user_id="u"))


def updated(version: int) -> Event[Any]:
    return new_event(TicketUpdated(id="t1", version=version, title="b", price=1.0, user_id="u"))


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus("tickets")


async def insert(db: Any, *events: Event[Any]) -> ObjectId:
    doc_id = ObjectId()
    await db[COLL].insert_one({"_id": doc_id, "title": "a", **outbox_fields(*events)})
    return doc_id


async def test_flush_publishes_in_order_and_clears_the_outbox(
    any_db: Any, bus: InMemoryBus
) -> None:
    doc_id = await insert(any_db, created())
    await any_db[COLL].update_one(
        {"_id": doc_id}, with_outbox({"$set": {"title": "b"}}, updated(1), updated(2))
    )
    relay = OutboxRelay(bus, any_db, [COLL])
    assert await relay.flush(COLL, doc_id) == 3
    assert [e.data.version for e in bus.published] == [0, 1, 2]
    doc = await any_db[COLL].find_one({"_id": doc_id})
    assert doc[OUTBOX] == []
    assert not doc[PENDING]  # nx-27017 returns booleans as 0/1
    assert doc["title"] == "b"
    assert await relay.flush(COLL, doc_id) == 0  # nothing twice


async def test_with_nats_down_the_event_stays_and_goes_out_when_it_is_back(
    any_db: Any, bus: InMemoryBus
) -> None:
    bus.broker.available = False
    doc_id = await insert(any_db, created())
    relay = OutboxRelay(bus, any_db, [COLL])
    assert await relay.flush(COLL, doc_id) == 0
    assert await relay.sweep() == 0
    doc = await any_db[COLL].find_one({"_id": doc_id})
    assert doc[PENDING]
    assert len(doc[OUTBOX]) == 1
    bus.broker.available = True
    assert await relay.sweep() == 1
    assert [e.subject for e in bus.published] == [Subject.TICKET_CREATED]


async def test_a_crash_between_write_and_publish_loses_nothing(
    any_db: Any, bus: InMemoryBus
) -> None:
    """The write landed but the process died before its kick: a new process's sweep sends it."""
    event = created()
    await insert(any_db, event)
    new_process_relay = OutboxRelay(bus, any_db, [COLL], sweep_seconds=0.01)
    new_process_relay.start()
    try:
        for _ in range(500):
            if bus.published:
                break
            await asyncio.sleep(0.01)
    finally:
        await new_process_relay.close()
    assert [e.id for e in bus.published] == [event.id]


async def test_events_added_during_a_flush_are_not_lost(any_db: Any, bus: InMemoryBus) -> None:
    doc_id = await insert(any_db, created())
    relay = OutboxRelay(bus, any_db, [COLL])
    original = bus.publish

    async def publish_then_write(event: Event[Any]) -> None:
        await original(event)
        if event.data.version == 0:
            # Another request changes the document while the relay is mid-flush.
            await any_db[COLL].update_one({"_id": doc_id}, with_outbox({}, updated(1)))

    bus.publish = publish_then_write  # type: ignore[method-assign]
    await relay.flush(COLL, doc_id)
    doc = await any_db[COLL].find_one({"_id": doc_id})
    assert doc[PENDING]  # the new event keeps the flag up
    await relay.sweep()
    assert [e.data.version for e in bus.published] == [0, 1]
    doc = await any_db[COLL].find_one({"_id": doc_id})
    assert (doc[OUTBOX], bool(doc[PENDING])) == ([], False)


async def test_a_document_inserted_without_events_can_take_them_later(
    any_db: Any, bus: InMemoryBus
) -> None:
    doc_id = await insert(any_db)
    assert not (await any_db[COLL].find_one({"_id": doc_id}))[PENDING]
    await any_db[COLL].update_one(
        {"_id": doc_id}, with_outbox({"$set": {"title": "b"}}, updated(1))
    )
    assert await OutboxRelay(bus, any_db, [COLL]).sweep() == 1


async def test_a_republished_event_is_stored_once(any_db: Any, bus: InMemoryBus) -> None:
    """A publish whose confirmation was lost is retried; the bus de-duplicates by event id."""
    event = created()
    doc_id = await insert(any_db, event)
    await bus.publish(event)  # the first attempt reached the server, its ack did not come back
    await OutboxRelay(bus, any_db, [COLL]).flush(COLL, doc_id)
    assert [e.id for e in bus.published] == [event.id]


async def test_kick_publishes_without_waiting_for_the_sweep(any_db: Any, bus: InMemoryBus) -> None:
    relay = OutboxRelay(bus, any_db, [COLL], sweep_seconds=3600)
    doc_id = await insert(any_db, created())
    relay.kick(COLL, doc_id)
    for _ in range(500):
        if bus.published:
            break
        await asyncio.sleep(0.005)
    await relay.close()
    assert len(bus.published) == 1


async def test_with_outbox_keeps_the_callers_own_add_to_set(any_db: Any, bus: InMemoryBus) -> None:
    doc_id = ObjectId()
    # Arrays exist from the insert on: nx-27017's $addToSet does nothing on a missing field.
    await any_db[COLL].insert_one({"_id": doc_id, "tags": [], **outbox_fields()})
    update = with_outbox({"$addToSet": {"tags": "a"}, "$set": {"title": "b"}}, updated(1))
    await any_db[COLL].update_one({"_id": doc_id}, update)
    doc = await any_db[COLL].find_one({"_id": doc_id})
    assert doc["tags"] == ["a"]
    assert len(doc[OUTBOX]) == 1
