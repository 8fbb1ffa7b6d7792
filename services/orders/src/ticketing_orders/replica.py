"""Orders' replica of tickets, kept from ticket events, and the reservation field on it.

`reservedBy` is orders' own: the order holding the ticket (see `reservations`). The ticket
owner's fields (title, price, version) come only from ticket events, a version at a time.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from ticketing_common.events import TicketCreated, TicketUpdated
from ticketing_common.money import to_cents
from ticketing_common.mongo import Database, collection

TICKETS = "tickets"


class TicketReplicaDoc(TypedDict):
    """A document of orders' `tickets`: the ticket as its events told, and who holds it."""

    # The tickets service's id of the ticket.
    _id: str
    title: str
    priceCents: int
    version: int
    # The order holding the ticket (see `reservations`), None when free.
    reservedBy: NotRequired[str | None]


def _tickets(db: Database) -> AsyncCollection[TicketReplicaDoc]:
    return collection(db, TICKETS, TicketReplicaDoc)


async def get_ticket(db: Database, *, ticket_id: str) -> TicketReplicaDoc | None:
    return await _tickets(db).find_one({"_id": ticket_id})


async def get_tickets(db: Database, *, ticket_ids: list[str]) -> dict[str, TicketReplicaDoc]:
    unique = sorted(set(ticket_ids))
    cursor = _tickets(db).find({"_id": {"$in": unique}}).limit(len(unique))
    return {doc["_id"]: doc async for doc in cursor}


async def insert_ticket(db: Database, *, data: TicketCreated) -> bool:
    """Add a ticket to the replica; False if it is already there (a duplicate event)."""
    try:
        await _tickets(db).insert_one(
            {
                "_id": data.id,
                "title": data.title,
                "priceCents": to_cents(data.price),
                "version": data.version,
                "reservedBy": None,
            }
        )
    except DuplicateKeyError:
        return False
    return True


async def apply_ticket_update(db: Database, *, data: TicketUpdated) -> bool:
    """Apply an update only if it is the replica's next version; False if it is not.

    The reservation fields are ours, not the ticket owner's, and are never touched here.
    """
    doc = await _tickets(db).find_one_and_update(
        {"_id": data.id, "version": data.version - 1},
        {
            "$set": {
                "title": data.title,
                "priceCents": to_cents(data.price),
                "version": data.version,
            }
        },
    )
    return doc is not None


async def take(
    db: Database, *, ticket_id: str, holder: str | None, order_id: str
) -> TicketReplicaDoc | None:
    """Make `order_id` the ticket's holder if `holder` still is (None: the ticket is free)."""
    return await _tickets(db).find_one_and_update(
        {"_id": ticket_id, "reservedBy": holder},
        {"$set": {"reservedBy": order_id}},
        return_document=ReturnDocument.AFTER,
    )


async def release_ticket(db: Database, *, ticket_id: str, order_id: str) -> None:
    """Free the ticket if, and only if, this order still holds it."""
    await _tickets(db).update_one(
        {"_id": ticket_id, "reservedBy": order_id},
        {"$set": {"reservedBy": None}},
    )
