"""The outbox's clear window: outboxes whose events went out close together are emptied by one
write.

Once a flush has published every entry of a document's outbox, the outbox must be emptied and
its flag cleared: a write per purchase in each service. On nx-27017 every command costs CPU
before any work, so the outboxes of a collection that finish publishing within the window of
each other (or in the same turn of the loop, with none) are emptied by one bulk write. The
events are out already; only the flag waits (a sweep in that window finds the document locked,
then empty). The kick waits this window; the sweep, which flushes one document after another,
does not.

Why this fast path exists, with its measurements:
BENCHMARKS.md, "Why the fast paths exist: the outbox's clear window".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from pymongo import UpdateOne

from ticketing_common.mongo import Database
from ticketing_common.outbox._writes import OUTBOX, PENDING

# Outboxes whose events went out within this long of each other are emptied by one write
# (`ClearWindow.empty_if_only`): with events acknowledged one at a time, the same turn of the
# loop gathers more than one per write under load.
CLEAR_WINDOW_SECONDS = 0.05

# One outbox waiting to be emptied: its document, the ids it must hold exactly, and the answer
# (emptied or not) its flush waits for.
_Waiting = tuple[Any, list[Any], asyncio.Future[bool]]


class ClearWindow:
    """The outboxes of a relay waiting to be emptied together, per collection and window."""

    def __init__(
        self,
        database: Callable[[], Database],
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        # The relay's database (raises without one) and its way of running work in the
        # background (kept until done, so closing the relay waits for it).
        self._database = database
        self._spawn = spawn
        self._emptying: dict[tuple[str, float], list[_Waiting]] = {}

    async def empty_if_only(
        self, collection: str, doc_id: Any, ids: list[Any], window: float
    ) -> bool:
        """Empty the document's outbox (and clear its flag) if it holds exactly the entries
        `ids`; False if it did not (an entry was pushed meanwhile).

        The outboxes of a collection that finish publishing within `window` seconds of each
        other (or in the same turn of the loop, with none) are emptied by one bulk write.
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
