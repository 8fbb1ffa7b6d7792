"""Publishing that cannot lose an event: the transactional outbox, inside the document itself.

A write that implies events stores them in the same document, in the same single-document
write (`_outbox`), so the state change and its events exist together or not at all; no
transaction is needed, which matters because not every Mongo we run on isolates them.

Writes that carry events go through `Outbox` (one per process, bound to the database and the
relay): it adds the events to the write and, once the write succeeded, has the relay publish
them, so no caller can forget to. The relay then publishes them and removes them from the
document:
- right away, from the write that stored them (`OutboxRelay.kick`), so events reach other
  services in milliseconds;
- and on a sweep every second, which finds whatever is left: NATS was down, the publish timed
  out, or the process died between the write and the publish.
An event may therefore be published more than once; JetStream drops repeats of an id within its
de-duplication window, and every handler is idempotent for the rest.

The sweep goes through pending documents oldest first (by `_id`), a batch at a time, continuing
after the last document it saw and wrapping around at the end: a document whose events cannot go
out does not keep the others from their turn. When the bus is down it stops early (every publish
would fail) and carries on from there next time.

A stream full (`PublishRefused`: a consumer is down or behind by its stream's max_bytes) is a
dependency down too, never a reason to set an event aside: the entry stays in its document,
the sweep leaves that collection for this turn (its next documents would most likely be
refused the same) and tries again a second later, so the events go out, in order, as soon as
the stream has room.

An entry the bus refuses while it is healthy (not a valid event, a subject no stream holds, too
large: anything but BusUnavailable or another infrastructure failure) can never be published as
it is. It is moved aside, into the `outbox_aside` collection (with its document, error and time;
logged at error), so it blocks neither its document's later events nor the sweep.
`python -m ticketing_common.deadletters outbox-aside` lists those entries and requeues one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, Generic, NotRequired, TypedDict, cast

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from ticketing_common.bus.base import (
    Bus,
    BusUnavailable,
    PublishRefused,
    is_infrastructure_failure,
)
from ticketing_common.events import Event, from_document, to_document
from ticketing_common.mongo import D, Database, Document, collection, versioned
from ticketing_common.telemetry.tracing import outbox_entry, publishing

log = logging.getLogger("ticketing.outbox")

OUTBOX = "_outbox"
PENDING = "_outboxPending"
ASIDE = "outbox_aside"
SWEEP_BATCH = 500
# Outboxes whose events went out within this long of each other are emptied by one write
# (`OutboxRelay._empty_if_only`): with events acknowledged one at a time, the same turn of the
# loop gathered about two per write under load.
CLEAR_WINDOW_SECONDS = 0.05


class Outboxed(TypedDict):
    """The outbox fields of a document that carries events: the base of each such collection's
    document TypedDict. Not required: a projection or an older document may lack them."""

    _outbox: NotRequired[list[dict[str, Any]]]
    _outboxPending: NotRequired[bool]


class AsideEntry(TypedDict):
    """A document of `outbox_aside`: an outbox entry the bus refused, with its origin."""

    _id: str
    collection: str
    documentId: Any
    entry: Any
    error: str
    at: datetime


def outbox_fields(*events: Event[Any]) -> dict[str, Any]:
    """Fields for a document being inserted, with its events or none.

    Every document that may ever carry events must be inserted with these (even with no
    events): nx-27017's $addToSet does nothing on a missing array, so a later `with_outbox`
    would silently drop its event there.
    """
    return {OUTBOX: [_entry(e) for e in events], PENDING: bool(events)}


def with_outbox(update: dict[str, Any], *events: Event[Any]) -> dict[str, Any]:
    """`update` plus its events, as one update document."""
    merged = dict(update)
    merged["$set"] = {**merged.get("$set", {}), PENDING: True}
    # $addToSet, not $push: nx-27017 stores $push-ed sub-documents as JSON strings, and event ids
    # are unique, so the set semantics change nothing.
    merged["$addToSet"] = {
        **merged.get("$addToSet", {}),
        OUTBOX: {"$each": [_entry(e) for e in events]},
    }
    return merged


def _entry(event: Event[Any]) -> dict[str, Any]:
    """An event as its outbox stores it, with the trace context of the span that wrote it (the
    relay publishes it in that trace, however much later)."""
    return outbox_entry(to_document(event), event)


def strip_outbox(doc: D) -> D:
    """The document without its outbox fields (a new dict of the same type)."""
    return cast(D, {k: v for k, v in doc.items() if k not in (OUTBOX, PENDING)})


def _entry_id(collection: str, doc_id: Any, raw: Any) -> str:
    """A stable id for an entry set aside: setting the same entry aside twice stores it once."""
    event_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(event_id, str):
        event_id = hashlib.sha256(repr(raw).encode()).hexdigest()[:24]
    return f"{collection}:{doc_id}:{event_id}"


def _aside(db: Database) -> AsyncCollection[AsideEntry]:
    return collection(db, ASIDE, AsideEntry)


async def list_aside(db: Database) -> list[AsideEntry]:
    """The outbox entries set aside in this database, oldest first."""
    return [d async for d in _aside(db).find({}).sort("at", 1)]


async def requeue_aside(db: Database, entry_id: str) -> bool:
    """Put an entry set aside back into its document's outbox (once its cause is fixed); the
    relay's next sweep publishes it. False if there is no such entry."""
    entry = await _aside(db).find_one({"_id": entry_id})
    if entry is None:
        return False
    await db[entry["collection"]].update_one(
        {"_id": entry["documentId"]}, with_outbox({}, from_document(entry["entry"]))
    )
    await _aside(db).delete_one({"_id": entry_id})
    return True


class OutboxRelay:
    def __init__(
        self,
        bus: Bus,
        db: Database | None,
        collections: list[str],
        *,
        sweep_seconds: float = 1.0,
        sweep_batch: int = SWEEP_BATCH,
        clear_window: float = CLEAR_WINDOW_SECONDS,
    ) -> None:
        self.bus = bus
        # None for a service without a database (expiration), which has no collections either.
        self.db = db
        self.collections = collections
        self.sweep_seconds = sweep_seconds
        self.sweep_batch = sweep_batch
        self.clear_window = clear_window
        self._locks: dict[tuple[str, Any], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Per collection and window: the outboxes to empty together (`_empty_if_only`).
        self._emptying: dict[
            tuple[str, float], list[tuple[Any, list[Any], asyncio.Future[bool]]]
        ] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # Per collection: the `_id` of the last document the sweep looked at.
        self._cursors: dict[str, Any] = {}

    def _database(self) -> Database:
        if self.db is None:
            raise RuntimeError("this outbox relay has no database")
        return self.db

    def kick(self, collection: str, doc_id: Any, outbox: list[Any] | None = None) -> None:
        """Publish this document's pending events now, without making the caller wait.

        `outbox`: the document's outbox as the write that kicks left it (the writer has it from
        the write itself), which spares reading it back. Entries another process published
        meanwhile go out again: the bus drops the repeat by its message id.
        """
        self._spawn(self.flush(collection, doc_id, outbox, clear_window=self.clear_window))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` in the background, kept until done (`close` waits for it)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(
        self,
        collection: str,
        doc_id: Any,
        outbox: list[Any] | None = None,
        *,
        clear_window: float = 0.0,
    ) -> int:
        """Publish one document's pending events in order; returns how many went out.

        `clear_window`: how long the emptying of its outbox may wait for others' (a kick waits;
        the sweep, which flushes one document after another, does not)."""
        try:
            return await self._flush(collection, doc_id, outbox, clear_window)
        except BusUnavailable as exc:
            log.info("outbox publish deferred", extra={"collection": collection, "error": str(exc)})
            return 0
        except Exception:
            log.exception("outbox flush failed", extra={"collection": collection})
            return 0

    async def _flush(
        self, collection: str, doc_id: Any, outbox: list[Any] | None, clear_window: float
    ) -> int:
        key = (collection, doc_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._flush_locked(collection, doc_id, outbox, clear_window)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _flush_locked(
        self, collection: str, doc_id: Any, outbox: list[Any] | None, clear_window: float
    ) -> int:
        coll = self._database()[collection]
        pending = outbox
        if pending is None:
            doc = await coll.find_one({"_id": doc_id}, {OUTBOX: 1})
            if doc is None:
                return 0
            pending = doc.get(OUTBOX) or []
        done: list[Any] = []  # ids of the entries published or set aside
        odd: list[Any] = []  # entries set aside that have no id (not even a document)
        sent = 0
        try:
            for raw in pending:
                try:
                    event = from_document(raw)
                    with publishing(self.bus.service, event, raw):
                        await self.bus.publish(event)
                except BusUnavailable:
                    raise
                except Exception as exc:
                    if is_infrastructure_failure(exc):
                        raise BusUnavailable(f"publish failed: {exc!r}") from exc
                    await self._set_aside(collection, doc_id, raw, exc)
                else:
                    sent += 1
                if isinstance(raw, dict) and "id" in raw:
                    done.append(raw["id"])
                else:
                    odd.append(raw)
        finally:
            # The usual case, in one write: the outbox still holds exactly the entries just
            # handled (as many, each of them: ids are unique), so it empties and the flag goes.
            emptied = (
                bool(done)
                and not odd
                and len(done) == len(pending)
                and await self._empty_if_only(collection, doc_id, done, clear_window)
            )
            if not emptied and done:
                await coll.update_one({"_id": doc_id}, {"$pull": {OUTBOX: {"id": {"$in": done}}}})
            if odd:
                await coll.update_one({"_id": doc_id}, {"$pull": {OUTBOX: {"$in": odd}}})
        if not emptied:
            # Clear the flag only if nothing new was pushed meanwhile (the filter checks
            # emptiness and the update is atomic with it).
            await coll.update_one({"_id": doc_id, OUTBOX: {"$size": 0}}, {"$set": {PENDING: False}})
        return sent

    async def _empty_if_only(
        self, collection: str, doc_id: Any, ids: list[Any], window: float
    ) -> bool:
        """Empty the document's outbox (and clear its flag) if it holds exactly the entries
        `ids`; False if it did not (an entry was pushed meanwhile).

        The outboxes of a collection that finish publishing within `window` seconds of each
        other (or in the same turn of the loop, with none) are emptied by one bulk write: a
        round trip per purchase in each service, and on nx-27017 each command costs half a
        millisecond of its CPU or more before any work. The events are out already; only the
        flag waits (a sweep in that window finds the document locked, then empty).
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        key = (collection, window)
        waiting = self._emptying.setdefault(key, [])
        waiting.append((doc_id, ids, answer))
        if len(waiting) == 1:
            loop.call_later(window, lambda: self._spawn(self._empty_together(key)))
        return await answer

    async def _empty_together(self, key: tuple[str, float]) -> None:
        collection = key[0]
        batch = self._emptying.pop(key, [])
        # `$and` of one equality per id, not `$all` (nx-27017 matches no `$all` on a path into
        # an array); a write pushed meanwhile changes the size and the filter misses.
        writes = [
            UpdateOne(
                {
                    "_id": doc_id,
                    OUTBOX: {"$size": len(ids)},
                    "$and": [{f"{OUTBOX}.id": entry_id} for entry_id in ids],
                },
                {"$set": {OUTBOX: [], PENDING: False}},
            )
            for doc_id, ids, _ in batch
        ]
        try:
            result = await self._database()[collection].bulk_write(writes, ordered=False)
        except Exception as exc:
            for _, _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        # The result does not say which writes missed: if any did, each flush takes the slow
        # path, which is harmless for an outbox this write did empty.
        emptied = result.matched_count == len(batch)
        for _, _, answer in batch:
            if not answer.done():
                answer.set_result(emptied)

    async def _set_aside(self, collection: str, doc_id: Any, raw: Any, exc: Exception) -> None:
        from pymongo.errors import DuplicateKeyError

        entry_id = _entry_id(collection, doc_id, raw)
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "outbox entry set aside: the bus refuses it",
            extra={"collection": collection, "entry": entry_id, "error": error},
        )
        # A duplicate: set aside before, by a flush that died before removing it from the outbox.
        with contextlib.suppress(DuplicateKeyError):
            await _aside(self._database()).insert_one(
                {
                    "_id": entry_id,
                    "collection": collection,
                    "documentId": doc_id,
                    # As stored (JSON types), so it can be requeued as it was.
                    "entry": json.loads(json.dumps(raw, default=str)),
                    "error": error[:2000],
                    "at": datetime.now(UTC),
                }
            )

    async def sweep(self) -> int:
        """Publish what is pending, a batch per collection, oldest first from where the last
        sweep stopped; returns how many events went out."""
        total = 0
        for name in self.collections:
            sent, bus_down = await self._sweep_collection(name)
            total += sent
            if bus_down:
                break
        return total

    async def _pending_ids(self, name: str) -> list[Any]:
        """The next batch of pending documents: those after the last one the previous sweep
        looked at, then the oldest ones again, by `_id`.

        Usually all that is pending fits in one batch: one query on the flag alone finds it,
        and the turn is taken here. Only a larger backlog (the bus was down a while) is paged
        by `_id` range, which nx-27017 answers by reading the whole collection: 80 ms at 5,000
        documents, every second, while every other command of the service waits.
        """
        coll, after = self._database()[name], self._cursors.get(name)
        first = coll.find({PENDING: True}, {"_id": 1}).sort("_id", 1).limit(self.sweep_batch + 1)
        ids = [d["_id"] async for d in first]
        if len(ids) <= self.sweep_batch:
            if after is None:
                return ids
            with contextlib.suppress(TypeError):  # ids of several types: let Mongo order them
                return [i for i in ids if i > after] + [i for i in ids if i <= after]
        query: dict[str, Any] = {PENDING: True}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = coll.find(query, {"_id": 1}).sort("_id", 1).limit(self.sweep_batch)
        ids = [d["_id"] async for d in cursor]
        if len(ids) < self.sweep_batch and after is not None:
            # Wrap around: the oldest ones again, up to where this batch began.
            rest = self.sweep_batch - len(ids)
            head = coll.find({PENDING: True, "_id": {"$lte": after}}, {"_id": 1})
            ids += [d["_id"] async for d in head.sort("_id", 1).limit(rest)]
        return ids

    async def _sweep_collection(self, name: str) -> tuple[int, bool]:
        sent = 0
        for doc_id in await self._pending_ids(name):
            # Past this document whatever happens to it: the next sweep goes on from there.
            self._cursors[name] = doc_id
            try:
                sent += await self._flush(name, doc_id, None, 0.0)
            except PublishRefused as exc:
                log.warning(
                    "outbox sweep paused for the collection: stream full",
                    extra={"collection": name, "stream": exc.stream, "error": str(exc)},
                )
                return sent, False
            except BusUnavailable as exc:
                if not await self.bus.ready():
                    log.info("outbox sweep paused: bus down", extra={"error": str(exc)})
                    return sent, True
                # The bus is up but refused this one (a timeout): its turn comes again.
                log.warning("outbox publish failed", extra={"collection": name, "error": str(exc)})
            except Exception:
                log.exception("outbox flush failed", extra={"collection": name})
        return sent, False

    async def _sweep_forever(self) -> None:
        while True:
            try:
                sent = await self.sweep()
                if sent:
                    log.info("outbox sweep published events", extra={"count": sent})
            except Exception:
                log.exception("outbox sweep failed")
            await asyncio.sleep(self.sweep_seconds)

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="outbox-sweep")

    async def close(self) -> None:
        tasks: list[asyncio.Task[Any]] = list(self._tasks)
        if self._sweeper is not None:
            self._sweeper.cancel()
            tasks.append(self._sweeper)
        # In-flight kicks finish (they are quick); whatever they do not publish, the next
        # start's sweep will.
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=2)


class OutboxCollection(Generic[D]):
    """One collection's writes that carry events: each stores its events in the document it
    writes and, once the write succeeded, has the relay publish them at once (the sweep is
    only the safety net, a second late). Its documents are typed as `D` (the collection's
    TypedDict, or `Document`)."""

    def __init__(self, db: Database | None, relay: OutboxRelay, name: str, doc: type[D]) -> None:
        if name not in relay.collections:
            # The relay would publish a kick but never sweep what a failed kick left behind.
            raise ValueError(f"the outbox relay does not sweep the {name!r} collection")
        if db is None:
            raise RuntimeError("this service has no database")
        self.name = name
        self.collection: AsyncCollection[D] = collection(db, name, doc)
        self.relay = relay

    def _published(self, doc: D, events: tuple[Event[Any], ...]) -> None:
        if events:
            # The outbox as this write left it: the relay need not read it back.
            self.relay.kick(self.name, doc["_id"], list(doc.get(OUTBOX) or []))

    async def insert_one(self, doc: D, *events: Event[Any]) -> D:
        """Insert `doc` (which gets its outbox fields, with or without events) and return it.

        Even without events: nx-27017's $addToSet does nothing on a missing array, so a later
        write's events would be lost (see `outbox_fields`).
        """
        # A dict at run time, whatever TypedDict `D` is for the checker.
        cast(Document, doc).update(outbox_fields(*events))
        await self.collection.insert_one(doc)
        self._published(doc, events)
        return doc

    async def find_one_and_update(
        self, filter: Document, update: Document, *events: Event[Any]
    ) -> D | None:
        """`update` with its events on the document `filter` matches, returned as it is after
        the update; None if none does."""
        doc: D | None = await self.collection.find_one_and_update(
            filter,
            with_outbox(update, *events) if events else update,
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            self._published(doc, events)
        return doc

    async def versioned_update(
        self,
        *events: Event[Any],
        id: Any,
        version: int,
        update: Document,
        extra_filter: Document | None = None,
    ) -> D | None:
        """`mongo.versioned_update` with events: applied (and the document returned) only at
        `version`, which it bumps by one."""
        filter_, update = versioned(
            id=id, version=version, update=update, extra_filter=extra_filter
        )
        return await self.find_one_and_update(filter_, update, *events)


class Outbox:
    """The process's writes that carry events, bound to its database and outbox relay:
    `outbox.collection(name, DocType)` writes like `db[name]`, events included, with its
    documents typed (see `OutboxCollection`); `outbox[name]` is the same with untyped documents.
    """

    def __init__(self, db: Database | None, relay: OutboxRelay) -> None:
        # None for a service without a database (expiration), which writes nothing.
        self._db = db
        self.relay = relay

    @property
    def db(self) -> Database:
        """The database the outbox writes to (for the reads that go with its writes)."""
        if self._db is None:
            raise RuntimeError("this service has no database")
        return self._db

    def collection(self, name: str, doc: type[D]) -> OutboxCollection[D]:
        return OutboxCollection(self._db, self.relay, name, doc)

    def __getitem__(self, name: str) -> OutboxCollection[Document]:
        return self.collection(name, Document)
