"""The e2e modules' users: each module runs its own stack (its `stack` fixture, with its own
settings); every module signs its users up on it the same way."""

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ticketing_devstack.e2e import users_of
from ticketing_devstack.people import User
from ticketing_devstack.stack import Stack


@pytest.fixture
async def user_factory(stack: Stack) -> AsyncIterator[Callable[[], Awaitable[User]]]:
    async with users_of(stack) as make:
        yield make
