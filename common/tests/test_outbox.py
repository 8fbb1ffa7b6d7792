"""The outbox: events written with the state change are published, even across outages."""

import asyncio
import io
from typing import Any

import pytest
from bson import ObjectId

from ticketing_common.bus import BusUnavailable
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Event, Subject, TicketCreated, TicketUpdated, new_event
from ticketing_common.mongo import Database, IndexSpec, ensure_indexes
from ticketing_common.outbox import (
    OUTBOX,
    PENDING,
    Outbox,
    OutboxRelay,
    list_aside,
    outbox_fields,
    requeue_aside,
    with_outbox,
)
from ticketing_testing.mongo import recorded_nx_client
from ticketing_testing.waiting import eventually

COLL = "tickets"


def created(version: int = 0) -> Event[Any]:
    return new_event(TicketCreated(id="t1", version=version, title="a", price=1.0, user_id="u"))


def updated(version: int) -> Event[Any]:
    return new_event(TicketUpdated(id="t1", version=version, title="b", price=1.0, user_id="u"))


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus("tickets")


async def insert(db: Database, *events: Event[Any]) -> ObjectId:
    doc_id = ObjectId()
    await db[COLL].insert_one({"_id": doc_id, "title": "a", **outbox_fields(*events)})
    return doc_id


async def test_flush_publishes_in_order_and_clears_the_outbox(
    any_db: Database, bus: InMemoryBus
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
    any_db: Database, bus: InMemoryBus
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
    any_db: Database, bus: InMemoryBus
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


async def test_events_added_during_a_flush_are_not_lost(any_db: Database, bus: InMemoryBus) -> None:
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


async def assert_the_newer_event_waits_for_the_sweep(
    db: Database, relay: OutboxRelay, bus: InMemoryBus, doc_id: ObjectId
) -> None:
    """Version 1 is still pending after the kick's flush; the sweep publishes it, after 0."""
    doc = await db[COLL].find_one({"_id": doc_id})
    assert (len(doc[OUTBOX]), bool(doc[PENDING])) == (1, True)
    assert await relay.sweep() == 1
    assert [e.data.version for e in bus.published] == [0, 1]
    doc = await db[COLL].find_one({"_id": doc_id})
    assert (doc[OUTBOX], bool(doc[PENDING])) == ([], False)


async def test_a_kick_with_the_writes_outbox_keeps_what_was_pushed_meanwhile(
    any_db: Database, bus: InMemoryBus
) -> None:
    """The writer hands the relay the outbox as its write left it (no read back); an event
    another request adds while that is published stays pending and goes out next."""
    first = created()
    doc_id = await insert(any_db, first)
    written = (await any_db[COLL].find_one({"_id": doc_id}))[OUTBOX]
    relay = OutboxRelay(bus, any_db, [COLL])
    original = bus.publish

    async def publish_then_write(event: Event[Any]) -> None:
        await original(event)
        if event.id == first.id:
            await any_db[COLL].update_one({"_id": doc_id}, with_outbox({}, updated(1)))

    bus.publish = publish_then_write  # type: ignore[method-assign]
    assert await relay.flush(COLL, doc_id, written) == 1
    await assert_the_newer_event_waits_for_the_sweep(any_db, relay, bus, doc_id)


async def test_a_stale_outbox_in_a_kick_republishes_but_clears_nothing_newer(
    any_db: Database, bus: InMemoryBus
) -> None:
    """A kick's outbox may be out of date by the time it runs (another process's sweep
    published and removed its entry, and a later write added one): the old entry goes out again
    (the bus drops the repeat by id) and the newer one stays pending."""
    first = created()
    doc_id = await insert(any_db, first)
    stale = (await any_db[COLL].find_one({"_id": doc_id}))[OUTBOX]
    relay = OutboxRelay(bus, any_db, [COLL])
    assert await relay.flush(COLL, doc_id) == 1  # elsewhere, first
    await any_db[COLL].update_one({"_id": doc_id}, with_outbox({}, updated(1)))
    await relay.flush(COLL, doc_id, stale)
    await assert_the_newer_event_waits_for_the_sweep(any_db, relay, bus, doc_id)


async def test_a_document_inserted_without_events_can_take_them_later(
    any_db: Database, bus: InMemoryBus
) -> None:
    doc_id = await insert(any_db)
    assert not (await any_db[COLL].find_one({"_id": doc_id}))[PENDING]
    await any_db[COLL].update_one(
        {"_id": doc_id}, with_outbox({"$set": {"title": "b"}}, updated(1))
    )
    assert await OutboxRelay(bus, any_db, [COLL]).sweep() == 1


async def test_a_republished_event_is_stored_once(any_db: Database, bus: InMemoryBus) -> None:
    """A publish whose confirmation was lost is retried; the bus de-duplicates by event id."""
    event = created()
    doc_id = await insert(any_db, event)
    await bus.publish(event)  # the first attempt reached the server, its ack did not come back
    await OutboxRelay(bus, any_db, [COLL]).flush(COLL, doc_id)
    assert [e.id for e in bus.published] == [event.id]


async def test_kick_publishes_without_waiting_for_the_sweep(
    any_db: Database, bus: InMemoryBus
) -> None:
    relay = OutboxRelay(bus, any_db, [COLL], sweep_seconds=3600)
    doc_id = await insert(any_db, created())
    relay.kick(COLL, doc_id)
    for _ in range(500):
        if bus.published:
            break
        await asyncio.sleep(0.005)
    await relay.close()
    assert len(bus.published) == 1


async def test_with_outbox_keeps_the_callers_own_add_to_set(
    any_db: Database, bus: InMemoryBus
) -> None:
    doc_id = ObjectId()
    # Arrays exist from the insert on: nx-27017's $addToSet does nothing on a missing field.
    await any_db[COLL].insert_one({"_id": doc_id, "tags": [], **outbox_fields()})
    update = with_outbox({"$addToSet": {"tags": "a"}, "$set": {"title": "b"}}, updated(1))
    await any_db[COLL].update_one({"_id": doc_id}, update)
    doc = await any_db[COLL].find_one({"_id": doc_id})
    assert doc["tags"] == ["a"]
    assert len(doc[OUTBOX]) == 1


class RefusingBus(InMemoryBus):
    """A healthy bus that refuses some events: with BusUnavailable (as a timeout on a
    connected server would) or with an error that says the event can never be published."""

    def __init__(self) -> None:
        super().__init__("tickets")
        self.unavailable_for: set[str] = set()
        self.poison: set[str] = set()
        self.attempts = 0

    async def publish(self, event: Event[Any]) -> None:
        self.attempts += 1
        if event.id in self.unavailable_for:
            raise BusUnavailable("publish timed out")
        if event.id in self.poison:
            raise ValueError("the bus will never take this one")
        await super().publish(event)


async def insert_many(db: Database, events: list[Event[Any]]) -> list[ObjectId]:
    """One document per event, oldest first (ObjectIds grow with time)."""
    ids = [ObjectId() for _ in events]
    docs = [{"_id": i, "title": "a", **outbox_fields(e)} for i, e in zip(ids, events, strict=True)]
    await db[COLL].insert_many(docs)
    return ids


async def test_a_fresh_document_is_not_starved_by_600_stuck_ones(any_db: Database) -> None:
    """Before: the sweep took the same 500 pending documents every time, so the 601st never
    had its turn."""
    bus = RefusingBus()
    stuck = [created() for _ in range(600)]
    bus.unavailable_for = {e.id for e in stuck}
    await insert_many(any_db, stuck)
    fresh = created()
    await insert(any_db, fresh)
    relay = OutboxRelay(bus, any_db, [COLL])
    for _ in range(2):
        await relay.sweep()
    assert [e.id for e in bus.published] == [fresh.id]
    # Still pending, each gets its turn again (and goes out once the bus takes it).
    bus.unavailable_for.clear()
    for _ in range(2):
        await relay.sweep()
    assert len(bus.published) == 601
    assert await any_db[COLL].count_documents({PENDING: True}) == 0


async def test_entries_the_bus_refuses_are_set_aside_and_the_rest_publish(any_db: Database) -> None:
    bus = RefusingBus()
    poison = [created() for _ in range(600)]
    bus.poison = {e.id for e in poison}
    await insert_many(any_db, poison)
    # One document whose middle entry is poison, and one that is not an event at all.
    bad = updated(1)
    bus.poison.add(bad.id)
    mixed = await insert(any_db, created(), bad, updated(2))
    await any_db[COLL].update_one(
        {"_id": mixed},
        {"$addToSet": {OUTBOX: {"id": "not-an-event", "subject": "nope:nope", "data": {}}}},
    )
    fresh = created()
    await insert(any_db, fresh)
    relay = OutboxRelay(bus, any_db, [COLL])
    for _ in range(2):
        await relay.sweep()
    published = [e.id for e in bus.published]
    assert fresh.id in published
    assert [e.data.version for e in bus.published if e.id != fresh.id] == [0, 2]
    assert await any_db[COLL].count_documents({PENDING: True}) == 0
    doc = await any_db[COLL].find_one({"_id": mixed})
    assert doc[OUTBOX] == []
    aside = await list_aside(any_db)
    assert len(aside) == 602
    by_event = {a["entry"]["id"]: a for a in aside}
    assert by_event[bad.id]["documentId"] == mixed
    assert by_event[bad.id]["collection"] == COLL
    assert "ValueError: the bus will never take this one" in by_event[bad.id]["error"]
    assert "not a valid event" in by_event["not-an-event"]["error"]

    # The cause is fixed: requeued, it goes out with the next sweep; requeued twice, once.
    bus.poison.clear()
    entry_id = by_event[bad.id]["_id"]
    assert await requeue_aside(any_db, entry_id)
    assert not await requeue_aside(any_db, entry_id)
    await relay.sweep()
    assert [e.id for e in bus.published].count(bad.id) == 1
    assert len(await list_aside(any_db)) == 601


async def test_the_sweep_stops_early_while_the_bus_is_down(any_db: Database) -> None:
    bus = RefusingBus()
    await insert_many(any_db, [created() for _ in range(5)])
    bus.broker.available = False
    relay = OutboxRelay(bus, any_db, [COLL])
    assert await relay.sweep() == 0
    assert bus.attempts == 1  # not one timeout per pending document
    bus.broker.available = True
    assert await relay.sweep() == 5


@pytest.mark.connected
async def test_the_command_lists_and_requeues_entries_set_aside(nx_mongo: Any) -> None:
    from pymongo import AsyncMongoClient

    from ticketing_common.admin import main

    url = f"mongodb://{nx_mongo.url}"
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, tz_aware=True)
    try:
        db = client["tickets"]
        bus = RefusingBus()
        event = created()
        bus.poison.add(event.id)
        doc_id = await insert(db, event)
        await OutboxRelay(bus, db, [COLL]).sweep()

        async def run(*argv: str) -> tuple[int, str]:
            out = io.StringIO()
            args = ["outbox-aside", "--mongo-url", url, "--db", "tickets", *argv]
            status = await asyncio.to_thread(main, args, out=out)
            return status, out.getvalue()

        status, text = await run()
        assert status == 0
        assert f"tickets:{doc_id}:{event.id}" in text
        assert "ValueError" in text
        assert text.splitlines()[-1] == "1 outbox entry set aside"
        assert await run("--requeue", f"tickets:{doc_id}:{event.id}") == (
            0,
            f"requeued tickets:{doc_id}:{event.id}\n",
        )
        assert (await run())[1].splitlines()[-1] == "0 outbox entries set aside"
        doc = await db[COLL].find_one({"_id": doc_id})
        assert [e["id"] for e in doc[OUTBOX]] == [event.id]
        assert doc[PENDING]
    finally:
        await client.close()


# --- Outbox: the write publishes its own events ------------------------------------------------


async def published_soon(bus: InMemoryBus, count: int) -> list[Event[Any]]:
    """What the bus got once `count` events are there (a kick runs as its own task)."""
    for _ in range(500):
        if len(bus.published) >= count:
            break
        await asyncio.sleep(0.005)
    return list(bus.published)


async def test_an_outbox_insert_publishes_its_events_without_the_sweep(
    any_db: Database, bus: InMemoryBus
) -> None:
    relay = OutboxRelay(bus, any_db, [COLL], sweep_seconds=3600)
    event = created()
    doc = await Outbox(any_db, relay)[COLL].insert_one({"_id": ObjectId(), "title": "a"}, event)
    assert [e.id for e in await published_soon(bus, 1)] == [event.id]
    await relay.close()
    stored = await any_db[COLL].find_one({"_id": doc["_id"]})
    assert stored[OUTBOX] == []
    assert not stored[PENDING]


async def test_an_outbox_insert_without_events_stores_an_empty_outbox(
    any_db: Database, bus: InMemoryBus
) -> None:
    """So that a later write's events have an array to join (nx-27017's $addToSet)."""
    relay = OutboxRelay(bus, any_db, [COLL], sweep_seconds=3600)
    outbox = Outbox(any_db, relay)
    doc = await outbox[COLL].insert_one({"_id": ObjectId(), "title": "a"})
    stored = await any_db[COLL].find_one({"_id": doc["_id"]})
    assert stored[OUTBOX] == []
    assert not stored[PENDING]
    event = updated(1)
    changed = await outbox[COLL].find_one_and_update(
        {"_id": doc["_id"]}, {"$set": {"title": "b"}}, event
    )
    assert changed is not None
    assert changed["title"] == "b"
    assert [e.id for e in await published_soon(bus, 1)] == [event.id]
    await relay.close()


async def test_an_outbox_update_that_matches_nothing_publishes_nothing(
    any_db: Database, bus: InMemoryBus
) -> None:
    relay = OutboxRelay(bus, any_db, [COLL], sweep_seconds=3600)
    outbox = Outbox(any_db, relay)
    doc = await outbox[COLL].insert_one({"_id": ObjectId(), "title": "a", "version": 0})
    stale = await outbox[COLL].versioned_update(
        updated(1), id=doc["_id"], version=7, update={"$set": {"title": "b"}}
    )
    assert stale is None
    fresh = await outbox[COLL].versioned_update(
        updated(1), id=doc["_id"], version=0, update={"$set": {"title": "b"}}
    )
    assert fresh is not None
    assert (fresh["title"], fresh["version"]) == ("b", 1)
    assert [e.data.version for e in await published_soon(bus, 1)] == [1]
    await relay.close()
    assert len(bus.published) == 1


def test_an_outbox_refuses_a_collection_its_relay_does_not_sweep(bus: InMemoryBus) -> None:
    """A kick that failed there would never be retried."""
    relay = OutboxRelay(bus, None, [COLL])
    with pytest.raises(ValueError, match="does not sweep"):
        Outbox(None, relay)["other"]


class DownAt(InMemoryBus):
    """A bus that goes down when it is handed one event, and stays down until told."""

    def __init__(self, event_id: str) -> None:
        super().__init__("tickets")
        self.event_id = event_id

    async def publish(self, event: Event[Any]) -> None:
        if event.id == self.event_id:
            self.event_id = ""
            self.broker.available = False
        await super().publish(event)


async def test_a_sweep_goes_on_after_where_the_last_one_stopped(any_db: Database) -> None:
    first, second, third = created(), created(), created()
    await insert_many(any_db, [first, second, third])
    bus = DownAt(second.id)
    relay = OutboxRelay(bus, any_db, [COLL])
    assert await relay.sweep() == 1  # the bus went down at the second: the sweep stops there
    bus.broker.available = True
    assert await relay.sweep() == 2
    assert [e.id for e in bus.published] == [first.id, third.id, second.id]


@pytest.mark.connected
async def test_a_sweep_asks_for_pending_documents_by_the_flag_alone(nx_mongo: Any) -> None:
    """nx-27017 answers `_id` ranges by reading the whole collection (80 ms per 5,000
    documents, each second, while every other command of the service waited): a sweep whose
    backlog fits in a batch asks for the indexed flag only, and still takes turns."""
    async with recorded_nx_client(nx_mongo) as (client, queries):
        db = client["tickets"]
        await ensure_indexes(db, [IndexSpec(COLL, [(PENDING, 1), ("_id", 1)])])
        await db[COLL].insert_many([{"_id": ObjectId(), **outbox_fields()} for _ in range(5)])
        first, second, third = created(), created(), created()
        await insert_many(db, [first, second, third])
        bus = DownAt(second.id)
        relay = OutboxRelay(bus, db, [COLL])
        assert await relay.sweep() == 1
        bus.broker.available = True
        assert await relay.sweep() == 2
        assert [e.id for e in bus.published] == [first.id, third.id, second.id]
        # Reading one document by its id is fine; a range of ids is what reads them all.
        assert {PENDING: True} in queries.filters
        assert not queries.ranges_on("_id"), queries.filters


class PushesDuring(InMemoryBus):
    """Publishing one event, another process writes a new event into that document's outbox."""

    def __init__(self, db: Database, doc_id: ObjectId, event_id: str) -> None:
        super().__init__("tickets")
        self.db, self.doc_id, self.event_id = db, doc_id, event_id
        self.pushed = updated(1)

    async def publish(self, event: Event[Any]) -> None:
        await super().publish(event)
        if event.id == self.event_id:
            await self.db[COLL].update_one({"_id": self.doc_id}, with_outbox({}, self.pushed))


async def outboxes(db: Database, ids: list[ObjectId]) -> list[tuple[list[str], bool]]:
    docs = {d["_id"]: d async for d in db[COLL].find({"_id": {"$in": ids}})}
    return [([e["id"] for e in docs[i][OUTBOX]], bool(docs[i][PENDING])) for i in ids]


async def test_outboxes_published_together_are_emptied_together_but_a_new_entry_stays(
    any_db: Database,
) -> None:
    events = [created() for _ in range(3)]
    ids = await insert_many(any_db, events)
    bus = PushesDuring(any_db, ids[1], events[1].id)
    relay = OutboxRelay(bus, any_db, [COLL])
    sent = await asyncio.gather(*(relay.flush(COLL, doc_id) for doc_id in ids))
    assert sent == [1, 1, 1]
    # The second got an entry while its first was published: it keeps that one, and its flag.
    assert await outboxes(any_db, ids) == [([], False), ([bus.pushed.id], True), ([], False)]
    assert await relay.sweep() == 1
    assert await outboxes(any_db, ids) == [([], False), ([], False), ([], False)]


@pytest.mark.connected
async def test_outboxes_published_in_one_turn_are_emptied_by_one_write(nx_mongo: Any) -> None:
    async with recorded_nx_client(nx_mongo) as (client, queries):
        db = client["tickets"]
        events = [created() for _ in range(5)]
        ids = await insert_many(db, events)
        relay = OutboxRelay(InMemoryBus("tickets"), db, [COLL])
        queries.commands.clear()
        # As the writes' kicks do: each with its outbox as written, so nothing is read back.
        flushes = [
            relay.flush(COLL, doc_id, [outbox_fields(event)[OUTBOX][0]])
            for doc_id, event in zip(ids, events, strict=True)
        ]
        assert await asyncio.gather(*flushes) == [1] * 5
        assert queries.commands == [("update", 5)]
        assert await outboxes(db, ids) == [([], False)] * 5


@pytest.mark.connected
async def test_outboxes_kicked_a_moment_apart_are_emptied_by_one_write(nx_mongo: Any) -> None:
    """Events acknowledged one at a time (each in a turn of its own) still share the write
    that empties their outboxes, when they are published by the writes' kicks."""
    async with recorded_nx_client(nx_mongo) as (client, queries):
        db = client["tickets"]
        events = [created() for _ in range(4)]
        ids = await insert_many(db, events)
        relay = OutboxRelay(InMemoryBus("tickets"), db, [COLL], clear_window=0.5)
        queries.commands.clear()
        for doc_id, event in zip(ids, events, strict=True):
            relay.kick(COLL, doc_id, [outbox_fields(event)[OUTBOX][0]])
            await asyncio.sleep(0.02)

        async def emptied() -> bool:
            return await outboxes(db, ids) == [([], False)] * 4

        await eventually(emptied)
        # (The finds are this test's own, looking.)
        assert [c for c in queries.commands if c[0] != "find"] == [("update", 4)]
        await relay.close()


def refused() -> float:
    from prometheus_client import REGISTRY

    labels = {"service": "tickets", "stream": "TICKETS", "reason": "stream_full"}
    return REGISTRY.get_sample_value("ticketing_bus_publish_refused_total", labels) or 0.0


async def test_a_full_stream_keeps_the_events_in_the_outbox_until_there_is_room(
    any_db: Database,
) -> None:
    """Issue 21: a stream at its max_bytes (orders' consumer down) refuses the publish: a
    dependency down, so nothing is set aside; the entries stay, in order, and go out once
    orders has consumed what filled the stream."""
    bus = InMemoryBus("tickets", stream_max_bytes={"TICKETS": 1500})
    await bus.start()  # creates the contract's durables: orders-ticket-created keeps events
    ids = [await insert(any_db, created(), updated(1), updated(2)) for _ in range(4)]
    relay = OutboxRelay(bus, any_db, [COLL])
    before = refused()
    await relay.sweep()
    assert 0 < len(bus.published) < 12
    # The sweep left the collection at the first refusal: not one refused publish per document.
    assert refused() == before + 1
    assert await list_aside(any_db) == []
    assert await any_db[COLL].count_documents({PENDING: True}) >= 1
    orders = InMemoryBus("orders", broker=bus.broker)
    seen: list[str] = []

    async def consume(event: Event[Any]) -> None:
        seen.append(event.id)

    orders.subscribe(Subject.TICKET_CREATED, consume)
    orders.subscribe(Subject.TICKET_UPDATED, consume)
    await orders.start()

    async def all_out() -> bool:
        await relay.sweep()
        return await any_db[COLL].count_documents({PENDING: True}) == 0

    await eventually(all_out, timeout=10)
    await eventually(lambda: len(seen) == 12)
    for doc_id in ids:  # each document's events in their order
        doc = await any_db[COLL].find_one({"_id": doc_id})
        assert doc is not None
        assert doc[OUTBOX] == []
    assert [e.data.version for e in bus.published].count(0) == 4
    await orders.close()
    await bus.close()
