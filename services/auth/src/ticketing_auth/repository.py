"""The users collection."""

from __future__ import annotations

from datetime import UTC, datetime

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from ticketing_common.events import UserCreated, new_event
from ticketing_common.mongo import Database, IndexSpec, collection, parse_object_id
from ticketing_common.outbox import Outbox, Outboxed

USERS = "users"


class UserDoc(Outboxed):
    """A document of `users`."""

    _id: ObjectId
    email: str
    passwordHash: str
    version: int
    createdAt: datetime


def _users(db: Database) -> AsyncCollection[UserDoc]:
    return collection(db, USERS, UserDoc)


INDEXES = [IndexSpec(USERS, [("email", 1)], {"unique": True, "name": "email_unique"})]


async def create_user(outbox: Outbox, *, email: str, password_hash: str) -> UserDoc:
    """Insert the user and its user:created event in one write; DuplicateKeyError if taken."""
    user_id = ObjectId()
    event = new_event(UserCreated(id=str(user_id), email=email))
    doc: UserDoc = {
        "_id": user_id,
        "email": email,
        "passwordHash": password_hash,
        "version": 0,
        "createdAt": datetime.now(UTC),
    }
    return await outbox.collection(USERS, UserDoc).insert_one(doc, event)


async def get_user_by_email(db: Database, *, email: str) -> UserDoc | None:
    return await _users(db).find_one({"email": email})


async def get_user(db: Database, *, user_id: str) -> UserDoc | None:
    """The user of this id; None for an unknown or malformed one."""
    oid = parse_object_id(user_id)
    return None if oid is None else await _users(db).find_one({"_id": oid})


def password_hash_of(user: UserDoc | None) -> str | None:
    """The user's password hash; None for no user (verified against a dummy, see `passwords`)."""
    return user["passwordHash"] if user is not None else None
