"""The Mongos tests run on: the in-memory one (mongomock) and nx-27017 through the real driver,
which encodes every query and document as BSON, as production does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo import monitoring

from ticketing_common.mongo import connect
from ticketing_testing.servers import ServerProcess


def _accept_pymongo_bulk_sort() -> None:
    """pymongo 4.11+ hands every bulk update a `sort` (None unless asked); mongomock 4.3's bulk
    builder has no such parameter and refuses the whole `bulk_write`. Accept it when unused."""
    from mongomock.collection import BulkOperationBuilder

    add_update: Callable[..., Any] = BulkOperationBuilder.add_update
    if getattr(add_update, "accepts_sort", False):
        return

    def with_sort(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("mongomock: a sort on a bulk update")
        return add_update(self, *args, **kwargs)

    with_sort.accepts_sort = True  # type: ignore[attr-defined]  # a marker: patched once
    BulkOperationBuilder.add_update = with_sort  # type: ignore[method-assign]  # the patch itself


_accept_pymongo_bulk_sort()

IN_MEMORY, NX = "mongomock", "nx"
# `pytest.mark.parametrize("mongo", EVERY_MONGO, indirect=True)`: a module's tests on both
# (`[NX]`: on nx-27017 only).
EVERY_MONGO = [IN_MEMORY, pytest.param(NX, marks=pytest.mark.connected)]


def in_memory_mongo() -> Any:
    """An in-memory Mongo with the async client API."""
    return AsyncMongoMockClient(tz_aware=True)


@contextlib.asynccontextmanager
async def nx_mongo_client(
    server: ServerProcess, listener: monitoring.CommandListener | None = None
) -> AsyncIterator[Any]:
    """A client of a running nx-27017, as a service connects (`ticketing_common.mongo.connect`);
    `listener` sees its commands."""
    client = connect(f"mongodb://{server.url}", app_name="test", listener=listener)
    try:
        yield client
    finally:
        await client.close()


class Queries(monitoring.CommandListener):
    """The commands a client sent and the filters of its `find`s, in order: what a test of how
    the database is asked looks at (nx-27017 reads a whole collection for some shapes of query,
    and each command costs it about half a millisecond)."""

    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []
        # Every command sent, by name, with how many statements it carried (a bulk write's).
        self.commands: list[tuple[str, int]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        statements = event.command.get("updates") or event.command.get("documents") or [None]
        self.commands.append((event.command_name, len(statements)))
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
    async with nx_mongo_client(server, queries) as client:
        yield client, queries
