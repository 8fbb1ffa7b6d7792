from collections.abc import AsyncIterator, Iterator

import fakeredis
import httpx
import pytest
from rq import Queue

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.testing import running
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
