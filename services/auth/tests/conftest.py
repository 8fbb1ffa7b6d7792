from collections.abc import AsyncIterator

import httpx
import pytest

from ticketing_auth.main import create_app
from ticketing_auth.settings import Settings
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.testing import running


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", jwt_key="test-jwt-key-0123456789abcdef0123456789")


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus("auth")


@pytest.fixture
async def client(
    settings: Settings, mongo: object, bus: InMemoryBus
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings, mongo=mongo, bus=bus)) as c:
        yield c
