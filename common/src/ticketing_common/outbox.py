"""Publishing that cannot lose an event: the transactional outbox, inside the document itself.

A write that implies events stores them in the same document, in the same single-document
write (`_outbox`), so the state change and its events exist together or not at all; no
transaction is needed, which matters because not every Mongo we run on isolates them.

The relay then publishes them and removes them from the document:
- right away, from the request that wrote them (`kick`), so events reach other services in
  milliseconds;
- and on a sweep every second, which finds whatever is left: NATS was down, the publish timed
  out, or the process died between the write and the publish.
An event may therefore be published more than once; JetStream drops repeats of an id within its
de-duplication window, and every handler is idempotent for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ticketing_common.bus.base import Bus, BusUnavailable
from ticketing_common.events import Event, from_document, to_document

log = logging.getLogger("ticketing.outbox")

OUTBOX = "_outbox"
PENDING = "_outboxPending"


def outbox_fields(*events: Event[Any]) -> dict[str, Any]:
    """Fields for a document being inserted, with its events or none.

    Every document that may ever carry events must be inserted with these (even with no
    events): nx-27017's $addToSet does nothing on a missing array, so a later `with_outbox`
    would silently drop its event there.
    """
    return {OUTBOX: [to_document(e) for e in events], PENDING: bool(events)}


def with_outbox(update: dict[str, Any], *events: Event[Any]) -> dict[str, Any]:
    """`update` plus its events, as one update document."""
    merged = dict(update)
    merged["$set"] = {**merged.get("$set", {}), PENDING: True}
    # $addToSet, not $push: nx-27017 stores $push-ed sub-documents as JSON strings, and event ids
    # are unique, so the set semantics change nothing.
    merged["$addToSet"] = {
        **merged.get("$addToSet", {}),
        OUTBOX: {"$each": [to_document(e) for e in events]},
    }
    return merged


def strip_outbox(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in (OUTBOX, PENDING)}


class OutboxRelay:
    def __init__(
        self,
        bus: Bus,
        db: Any,
        collections: list[str],
        *,
        sweep_seconds: float = 1.0,
    ) -> None:
        self.bus = bus
        self.db = db
        self.collections = collections
        self.sweep_seconds = sweep_seconds
        self._locks: dict[tuple[str, Any], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[int]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def kick(self, collection: str, doc_id: Any) -> None:
        """Publish this document's pending events now, without making the caller wait."""
        task = asyncio.create_task(self.flush(collection, doc_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self, collection: str, doc_id: Any) -> int:
        """Publish one document's pending events in order; returns how many went out."""
        key = (collection, doc_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._flush_locked(collection, doc_id)
        except BusUnavailable as exc:
            log.info("outbox publish deferred", extra={"collection": collection, "error": str(exc)})
            return 0
        except Exception:
            log.exception("outbox flush failed", extra={"collection": collection})
            return 0
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _flush_locked(self, collection: str, doc_id: Any) -> int:
        coll = self.db[collection]
        doc = await coll.find_one({"_id": doc_id}, {OUTBOX: 1})
        if doc is None:
            return 0
        pending = doc.get(OUTBOX) or []
        sent: list[str] = []
        try:
            for raw in pending:
                await self.bus.publish(from_document(raw))
                sent.append(raw["id"])
        finally:
            if sent:
                await coll.update_one({"_id": doc_id}, {"$pull": {OUTBOX: {"id": {"$in": sent}}}})
        # Clear the flag only if nothing new was pushed meanwhile (the filter checks emptiness
        # and the update is atomic with it).
        await coll.update_one({"_id": doc_id, OUTBOX: {"$size": 0}}, {"$set": {PENDING: False}})
        return len(sent)

    async def sweep(self) -> int:
        """Publish everything still pending, in every collection; returns how many went out."""
        total = 0
        for name in self.collections:
            cursor = self.db[name].find({PENDING: True}, {"_id": 1}).limit(500)
            ids = [d["_id"] async for d in cursor]
            for doc_id in ids:
                total += await self.flush(name, doc_id)
        return total

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
