from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from bson import ObjectId

from ticketing_common.mongo import (
    CommandCounter,
    Database,
    IndexSpec,
    as_utc,
    connect,
    ensure_indexes,
    parse_object_id,
    versioned_update,
)
from ticketing_testing.servers import ServerProcess


async def test_versioned_update_bumps_by_one_and_rejects_a_stale_write(any_db: Database) -> None:
    coll = any_db["tickets"]
    await coll.insert_one({"_id": "t1", "title": "a", "version": 0})
    first = await versioned_update(coll, id="t1", version=0, update={"$set": {"title": "b"}})
    assert first is not None
    assert (first["title"], first["version"]) == ("b", 1)
    # A writer that read version 0 before the change above must fail, not overwrite.
    stale = await versioned_update(coll, id="t1", version=0, update={"$set": {"title": "c"}})
    assert stale is None
    second = await versioned_update(coll, id="t1", version=1, update={"$set": {"title": "d"}})
    assert second is not None
    assert second["version"] == 2
    doc = await coll.find_one({"_id": "t1"})
    assert (doc["title"], doc["version"]) == ("d", 2)


async def test_versioned_update_honours_an_extra_condition(any_db: Database) -> None:
    coll = any_db["tickets"]
    await coll.insert_one({"_id": "t1", "orderId": "o1", "version": 3})
    blocked = await versioned_update(
        coll, id="t1", version=3, update={"$set": {"x": 1}}, extra_filter={"orderId": None}
    )
    assert blocked is None


async def test_indexes_are_created_on_every_backend(any_db: Database) -> None:
    specs = [
        IndexSpec("tickets", [("orderId", 1), ("_id", -1)]),
        IndexSpec("users", [("email", 1)], {"unique": True}),
    ]
    await ensure_indexes(any_db, specs)
    await ensure_indexes(any_db, specs)  # idempotent at every start
    names = [i["name"] async for i in await _list_indexes(any_db["tickets"])]
    assert any("orderId" in n for n in names)


async def _list_indexes(coll: Any) -> Any:
    cursor = coll.list_indexes()
    return await cursor if hasattr(cursor, "__await__") else cursor


def test_malformed_object_ids_parse_to_none() -> None:
    oid = ObjectId()
    assert parse_object_id(str(oid)) == oid
    for bad in ("", "123", "zzzzzzzzzzzzzzzzzzzzzzzz", "x" * 100):
        assert parse_object_id(bad) is None


async def test_a_compound_index_with_id_does_not_break_inserts(any_db: Database) -> None:
    """nx-27017 accepts such an index on an empty collection, then refuses every insert."""
    await ensure_indexes(any_db, [IndexSpec("fresh", [("orderId", 1), ("_id", -1)])])
    await any_db["fresh"].insert_one({"_id": ObjectId(), "orderId": None})
    assert await any_db["fresh"].find_one({"orderId": None}) is not None


def test_as_utc_reads_every_backends_datetimes() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert as_utc(aware) == aware
    assert as_utc(aware.replace(tzinfo=None)) == aware  # mongomock: naive UTC
    assert as_utc("2026-01-02 03:04:05.678000") == aware  # nx-27017 after a $set
    assert as_utc(aware.astimezone(timezone(timedelta(hours=2)))) == aware


@pytest.mark.parametrize("bad", ["yesterday", 12, None])
def test_as_utc_refuses_what_is_not_a_datetime(bad: object) -> None:
    with pytest.raises(ValueError, match=r"datetime|isoformat"):
        as_utc(bad)  # type: ignore[arg-type]


@pytest.mark.connected
async def test_the_command_counter_counts_each_round_trip(nx_mongo: ServerProcess) -> None:
    counter = CommandCounter()
    client = connect(f"mongodb://{nx_mongo.url}", app_name="counted", listener=counter)
    try:
        coll = client["counted"]["things"]
        await coll.insert_one({"_id": "a"})
        await coll.find_one({"_id": "a"})
        await coll.find_one({"_id": "b"})
    finally:
        await client.close()
    counts = counter.snapshot()
    assert (counts.get("insert"), counts.get("find")) == (1, 2)


async def test_a_client_without_a_counter_has_no_listener() -> None:
    client = connect("mongodb://127.0.0.1:1", app_name="plain")
    try:
        assert not client.options.event_listeners
    finally:
        await client.close()
