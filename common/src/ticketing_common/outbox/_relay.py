"""The outbox relay: publishes the events that writes stored in their documents, and removes
them from there.

Right away, from the write that stored them (`kick`), and on a sweep every second that finds
whatever is left (`sweep`: oldest first, a batch per collection, carrying on from where the last
one stopped); see the package's docstring for the rules. An entry the bus refuses while healthy
is set aside (`_aside`); outboxes that went out together are emptied together (`_clearing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from ticketing_common.bus.contract import (
    Bus,
    BusUnavailable,
    PublishRefused,
    is_infrastructure_failure,
)
from ticketing_common.events import from_document
from ticketing_common.mongo import Database
from ticketing_common.outbox._aside import set_aside
from ticketing_common.outbox._backlog import backlog
from ticketing_common.outbox._clearing import CLEAR_WINDOW_SECONDS, ClearWindow
from ticketing_common.outbox._writes import OUTBOX, PENDING
from ticketing_common.telemetry.tracing import publishing

log = logging.getLogger("ticketing.outbox")

SWEEP_BATCH = 500


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
        # The outboxes to empty together (`ClearWindow.empty_if_only`).
        self._clearing = ClearWindow(self._database, self._spawn)
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
                    await set_aside(self._database(), collection, doc_id, raw, exc)
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
                and await self._clearing.empty_if_only(collection, doc_id, done, clear_window)
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
        by `_id` range, which nx-27017 answers by reading the whole collection, every second,
        while every other command of the service waits.
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

    def backlog(self) -> AsyncIterator[tuple[str, int, float]]:
        """Per collection the relay sweeps: (its name, documents with events pending, age in
        seconds of the oldest pending event), for the metrics scrape."""
        return backlog(self.db, self.collections)

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
