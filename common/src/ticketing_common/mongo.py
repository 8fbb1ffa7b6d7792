"""Mongo helpers on PyMongo's AsyncMongoClient.

Written to the subset that real MongoDB, mongomock (unit tests) and nx-27017 (the local stack)
all get right: string ids for cross-service references, single-document atomic updates for
anything that must be race-free, no transactions, no partial indexes, no $lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar, cast

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient, ReturnDocument, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

__all__ = [
    "CommandCounter",
    "D",
    "Database",
    "Document",
    "IndexSpec",
    "as_utc",
    "collection",
    "connect",
    "ensure_indexes",
    "parse_object_id",
    "versioned",
    "versioned_update",
]

# A document as the driver hands it over when nothing more is known: queries, updates,
# projections, and collections no repository owns.
Document = dict[str, Any]
# A service's database. Its collections are typed by the repository that owns each one, with a
# TypedDict of its documents (see `collection`); at run time documents stay plain dicts.
Database: TypeAlias = AsyncDatabase[Document]
# The document type of a typed collection: a TypedDict (or `Document`).
D = TypeVar("D", bound=Mapping[str, Any])


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: list[tuple[str, int]]
    options: dict[str, Any] = field(default_factory=dict)


def collection(db: Database, name: str, doc: type[D]) -> AsyncCollection[D]:
    """`db[name]` with its documents typed as `doc` (a TypedDict), for mypy to check field names.

    Only for the checker: the driver still returns plain dicts (and mongomock its own
    collection), so nothing changes at run time.
    """
    return cast("AsyncCollection[D]", db[name])


class CommandCounter(monitoring.CommandListener):
    """Counts the commands (round trips) this process sends to Mongo, by command name.

    Opt-in (MONGO_COUNT_COMMANDS, for `make bench`): when off no listener is registered at all,
    so the driver pays nothing.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.counts[event.command_name] = self.counts.get(event.command_name, 0) + 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


def connect(
    url: str,
    *,
    app_name: str,
    timeout: float = 3.0,
    listener: monitoring.CommandListener | None = None,
) -> AsyncMongoClient[Document]:
    """One client per process: it pools connections and must be reused, never per request.
    `listener` sees every command it sends (`CommandCounter`, or a test's recorder)."""
    monitoring_options: dict[str, Any] = (
        {"event_listeners": [listener]} if listener is not None else {}
    )
    return AsyncMongoClient(
        url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(timeout * 1000),
        # A server that stops answering (paused, partitioned) fails the operation instead of
        # hanging it forever; our slowest query takes milliseconds.
        socketTimeoutMS=10000,
        **monitoring_options,
    )


async def _is_nx_27017(db: Database) -> bool:
    """nx-27017 (the local stack's Mongo) says so in buildInfo; real MongoDB and mongomock not."""
    try:
        info = await db.command("buildInfo")
    except Exception:
        return False
    return bool(info.get("process") == "nx_27017")


async def ensure_indexes(db: Database, specs: list[IndexSpec]) -> None:
    # nx-27017 cannot index `_id` inside a compound key: it accepts the index on an empty
    # collection and then rejects every insert. There, keep the rest of the key (the query stays
    # indexed); real MongoDB gets the full key.
    drop_id = await _is_nx_27017(db)
    for spec in specs:
        keys = spec.keys
        if drop_id and len(keys) > 1:
            keys = [k for k in keys if k[0] != "_id"]
        await db[spec.collection].create_index(keys, **spec.options)


def parse_object_id(value: str) -> ObjectId | None:
    """A malformed id is an unknown id (404), never an error (flaw 8)."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def as_utc(value: datetime | str) -> datetime:
    """A stored datetime as an aware UTC datetime, whichever backend read it.

    mongomock hands back naive datetimes, and nx-27017 returns a datetime written by `$set` as
    a string (`2026-01-02 03:04:05.678000`, UTC without an offset). Raises ValueError for
    anything else.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"not a stored datetime: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def versioned(
    *, id: Any, version: int, update: Document, extra_filter: Document | None = None
) -> tuple[Document, Document]:
    """The filter and update of a write that applies only at `version` and bumps it by one."""
    update = dict(update)
    update["$inc"] = {**update.get("$inc", {}), "version": 1}
    return {"_id": id, "version": version, **(extra_filter or {})}, update


async def versioned_update(
    collection: AsyncCollection[D],
    *,
    id: Any,
    version: int,
    update: Document,
    extra_filter: Document | None = None,
) -> D | None:
    """Apply `update` only if the document is still at `version`, and bump it by one.

    Optimistic concurrency: a stale writer matches nothing and gets None back. Single-document
    and atomic on every backend, so no transaction is needed. (A write that carries events goes
    through `Outbox`, which has the same method.)
    """
    filter_, update = versioned(id=id, version=version, update=update, extra_filter=extra_filter)
    doc: D | None = await collection.find_one_and_update(
        filter_, update, return_document=ReturnDocument.AFTER
    )
    return doc
