"""Outbox entries set aside: those the bus refuses while it is healthy, which can never be
published as they are.

The relay moves such an entry into the `outbox_aside` collection of the service's database
(`set_aside`), so it blocks neither its document's later events nor the sweep; the operator
lists them and, once the cause is fixed, puts one back into its document's outbox
(`list_aside`, `requeue_aside`: `python -m ticketing_common.admin outbox-aside`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any, TypedDict

from pymongo.asynchronous.collection import AsyncCollection

from ticketing_common.events import from_document
from ticketing_common.mongo import Database, collection
from ticketing_common.outbox._writes import with_outbox

log = logging.getLogger("ticketing.outbox")

ASIDE = "outbox_aside"


class AsideEntry(TypedDict):
    """A document of `outbox_aside`: an outbox entry the bus refused, with its origin."""

    _id: str
    collection: str
    documentId: Any
    entry: Any
    error: str
    at: datetime


def _entry_id(collection: str, doc_id: Any, raw: Any) -> str:
    """A stable id for an entry set aside: setting the same entry aside twice stores it once."""
    event_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(event_id, str):
        event_id = hashlib.sha256(repr(raw).encode()).hexdigest()[:24]
    return f"{collection}:{doc_id}:{event_id}"


def _aside(db: Database) -> AsyncCollection[AsideEntry]:
    return collection(db, ASIDE, AsideEntry)


async def set_aside(db: Database, collection: str, doc_id: Any, raw: Any, exc: Exception) -> None:
    """Store the outbox entry `raw` of the document `doc_id` aside, with why the bus refused it
    (logged at error); the relay then removes it from the outbox."""
    from pymongo.errors import DuplicateKeyError

    entry_id = _entry_id(collection, doc_id, raw)
    error = f"{type(exc).__name__}: {exc}"
    log.error(
        "outbox entry set aside: the bus refuses it",
        extra={"collection": collection, "entry": entry_id, "error": error},
    )
    # A duplicate: set aside before, by a flush that died before removing it from the outbox.
    with contextlib.suppress(DuplicateKeyError):
        await _aside(db).insert_one(
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
