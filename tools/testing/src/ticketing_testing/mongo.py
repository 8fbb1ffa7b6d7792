"""The Mongos tests run on: the in-memory one (mongomock) and nx-27017 through the real driver,
which encodes every query and document as BSON, as production does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from ticketing_common.mongo import connect
from ticketing_testing.servers import ServerProcess

IN_MEMORY, NX = "mongomock", "nx"
# `pytest.mark.parametrize("mongo", EVERY_MONGO, indirect=True)`: a module's tests on both
# (`[NX]`: on nx-27017 only).
EVERY_MONGO = [IN_MEMORY, pytest.param(NX, marks=pytest.mark.connected)]


def in_memory_mongo() -> Any:
    """An in-memory Mongo with the async client API."""
    return AsyncMongoMockClient(tz_aware=True)


@contextlib.asynccontextmanager
async def nx_mongo_client(server: ServerProcess) -> AsyncIterator[Any]:
    """A client of a running nx-27017, as a service connects (`ticketing_common.mongo.connect`)."""
    client = connect(f"mongodb://{server.url}", app_name="test")
    try:
        yield client
    finally:
        await client.close()
