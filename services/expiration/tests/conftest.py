from collections.abc import Iterator

import fakeredis
import pytest
from fastapi import FastAPI
from rq import Queue

from ticketing_common.bus.memory import InMemoryBus
from ticketing_expiration import job_guard
from ticketing_expiration.main import create_app
from ticketing_expiration.settings import Settings
from ticketing_testing.apps import settings_fixture

settings = settings_fixture(Settings)


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
    return job_guard.make_queue(redis, settings.queue_name)


@pytest.fixture
def app(settings: Settings, bus: InMemoryBus, redis: fakeredis.FakeRedis) -> FastAPI:
    return create_app(settings, bus=bus, redis=redis)
