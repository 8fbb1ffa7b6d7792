from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fakeredis
import httpx
import pytest
from rq import Queue

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.testing import ServerProcess, find_binary, free_port, running
from ticketing_expiration import repository
from ticketing_expiration.main import create_app
from ticketing_expiration.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", jwt_key="test-jwt-key-0123456789abcdef0123456789")


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus("expiration")


@pytest.fixture
def redis_fake() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def redis(redis_fake: fakeredis.FakeServer) -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(server=redis_fake)
    yield client
    client.close()


@pytest.fixture
def queue(redis: fakeredis.FakeRedis, settings: Settings) -> Queue:
    return repository.make_queue(redis, settings.queue_name)


@pytest.fixture
async def client(
    settings: Settings, bus: InMemoryBus, redis: fakeredis.FakeRedis
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings, bus=bus, redis=redis)) as c:
        yield c


def redis_process(data_dir: Path, port: int | None = None) -> ServerProcess:
    """A real redis-server with append-only persistence, as deployed (flaw 6)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    return ServerProcess(
        "redis",
        [
            find_binary("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
            str(data_dir),
        ],
        port,
        data_dir.parent / f"redis-{port}.log",
    )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = redis_process(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
