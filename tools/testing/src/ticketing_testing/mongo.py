"""The Mongos tests run on: the in-memory one (mongomock) and nx-27017 through the real driver,
which encodes every query and document as BSON, as production does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient, monitoring

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


class Queries(monitoring.CommandListener):
    """The filters of the `find` commands a client sent, in order: what a test of how a query
    is asked looks at (nx-27017 reads a whole collection for some shapes of query)."""

    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.filters.append(dict(event.command.get("filter", {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def ranges_on(self, field: str) -> list[dict[str, Any]]:
        """The filters that ask for a range or a set of values of `field` (an operator
        document, not one value)."""
        return [f for f in self.filters if isinstance(f.get(field), dict)]


@contextlib.asynccontextmanager
async def recorded_nx_client(server: ServerProcess) -> AsyncIterator[tuple[Any, Queries]]:
    """A client of a running nx-27017 that records the queries it sends."""
    queries = Queries()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        f"mongodb://{server.url}", tz_aware=True, event_listeners=[queries]
    )
    try:
        yield client, queries
    finally:
        await client.close()
