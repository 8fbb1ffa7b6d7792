"""The writes that carry events: the outbox fields of a document, and the writes that fill them
and then have the relay publish what they stored.

This module sits below the relay: it knows of it only what a write needs (`Kicks`), so the
relay can build on the fields defined here without a circle.
"""

from __future__ import annotations

from typing import Any, Generic, NotRequired, Protocol, TypedDict, cast

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from ticketing_common.events import Event, to_document
from ticketing_common.mongo import D, Database, Document, collection, versioned
from ticketing_common.telemetry.tracing import outbox_entry

OUTBOX = "_outbox"
PENDING = "_outboxPending"


class Outboxed(TypedDict):
    """The outbox fields of a document that carries events: the base of each such collection's
    document TypedDict. Not required: a projection or an older document may lack them."""

    _outbox: NotRequired[list[dict[str, Any]]]
    _outboxPending: NotRequired[bool]


class Kicks(Protocol):
    """What a write needs of the outbox relay (`OutboxRelay`): the collections it sweeps, and
    a kick that publishes a document's events now."""

    collections: list[str]

    def kick(self, collection: str, doc_id: Any, outbox: list[Any] | None = None) -> None: ...


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


class OutboxCollection(Generic[D]):
    """One collection's writes that carry events: each stores its events in the document it
    writes and, once the write succeeded, has the relay publish them at once (the sweep is
    only the safety net, a second late). Its documents are typed as `D` (the collection's
    TypedDict, or `Document`)."""

    def __init__(self, db: Database | None, relay: Kicks, name: str, doc: type[D]) -> None:
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

    def __init__(self, db: Database | None, relay: Kicks) -> None:
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
