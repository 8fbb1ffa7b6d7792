"""What the outbox holds back: per collection, the documents with events pending and the age of
the oldest pending event, as the metrics scrape reports them (`OutboxRelay.backlog`).

Here, not in the scrape, because only the outbox knows its fields: telemetry reads the backlog
through the relay, as it reads the consumers' lag through the bus, and imports no outbox module.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from ticketing_common.mongo import Database
from ticketing_common.outbox._writes import OUTBOX, PENDING

# The oldest pending event is looked for among this many pending documents, oldest first.
OLDEST_SCAN = 100


async def backlog(
    db: Database | None, collections: Sequence[str]
) -> AsyncIterator[tuple[str, int, float]]:
    """Per collection, one after the other: (its name, documents with events pending, seconds
    since the oldest of their events occurred; 0 with none). Nothing without a database."""
    if db is None:
        return
    now = time.time()
    for name in collections:
        coll = db[name]
        pending = await coll.count_documents({PENDING: True})
        oldest = now
        if pending:
            cursor = coll.find({PENDING: True}, {OUTBOX: 1}).sort("_id", 1).limit(OLDEST_SCAN)
            async for doc in cursor:
                for entry in doc.get(OUTBOX) or []:
                    oldest = min(oldest, _occurred(entry, now))
        yield name, pending, max(now - oldest, 0.0)


def _occurred(entry: Any, default: float) -> float:
    when = entry.get("occurredAt") if isinstance(entry, dict) else None
    try:
        return datetime.fromisoformat(str(when)).timestamp() if when else default
    except ValueError:
        return default
