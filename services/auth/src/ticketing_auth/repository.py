"""The users collection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from ticketing_common.events import UserCreated, new_event
from ticketing_common.mongo import Document, IndexSpec
from ticketing_common.outbox import outbox_fields

USERS = "users"

INDEXES = [IndexSpec(USERS, [("email", 1)], {"unique": True, "name": "email_unique"})]


async def create_user(db: Any, *, email: str, password_hash: str) -> Document:
    """Insert the user and its user:created event in one write; DuplicateKeyError if taken."""
    user_id = ObjectId()
    event = new_event(UserCreated(id=str(user_id), email=email))
    doc: Document = {
        "_id": user_id,
        "email": email,
        "passwordHash": password_hash,
        "version": 0,
        "createdAt": datetime.now(UTC),
        **outbox_fields(event),
    }
    await db[USERS].insert_one(doc)
    return doc


async def get_user_by_email(db: Any, *, email: str) -> Document | None:
    doc: Document | None = await db[USERS].find_one({"email": email})
    return doc
