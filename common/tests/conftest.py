from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ticketing_common.bus import Bus, InMemoryBus, JetStreamBus
from ticketing_common.bus.memory import InMemoryBroker
from ticketing_common.testing import ServerProcess, nats_process

BusFactory = Callable[..., Bus]


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.connected)])
async def make_bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusFactory]:
    """Build buses (one per simulated process) on the fake or on a real nats-server."""
    created: list[Bus] = []
    server: ServerProcess | None = None
    broker = InMemoryBroker()
    if request.param == "nats":
        server = nats_process(tmp_path / "nats")
        server.start()

    def factory(
        service: str = "svc",
        *,
        ack_wait: float = 5.0,
        max_deliver: int = 3,
        retry_delay: float = 0.05,
        **options: Any,
    ) -> Bus:
        """`options`: the buses' other keyword arguments (max_retry_delay, retry_horizon,
        max_hold_delay, max_handler_seconds), shrunk by tests that need them short."""
        bus: Bus
        if server is None:
            bus = InMemoryBus(
                service,
                broker=broker,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                retry_delay=retry_delay,
                **options,
            )
        else:
            bus = JetStreamBus(
                f"nats://{server.url}",
                service,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                retry_delay=retry_delay,
                **options,
            )
        created.append(bus)
        return bus

    factory.server = server  # type: ignore[attr-defined]
    factory.broker = broker  # type: ignore[attr-defined]
    yield factory
    for bus in created:
        await bus.close()
    if server is not None:
        server.stop()


@pytest.fixture(params=["mongomock", pytest.param("nx", marks=pytest.mark.connected)])
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A database on the in-memory Mongo and on nx-27017 through the real driver."""
    if request.param == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        yield AsyncMongoMockClient(tz_aware=True)["test"]
        return
    from pymongo import AsyncMongoClient

    from ticketing_common.testing import nx_process

    server = nx_process(tmp_path / "mongo")
    server.start()
    client: AsyncMongoClient[Any] = AsyncMongoClient(f"mongodb://{server.url}", tz_aware=True)
    try:
        yield client["test"]
    finally:
        await client.close()
        server.stop()
