"""Signing up and in (Argon2) wait in a line of their own: a burst of them never holds up
currentuser, which every page asks, in the main line."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ticketing_auth.main import create_app
from ticketing_auth.passwords import Passwords
from ticketing_auth.settings import Settings
from ticketing_testing.apps import running
from ticketing_testing.waiting import eventually


class SlowHasher:
    """Every password check held until the test lets them go; how many are held."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = 0

    async def verify(self, password: str, password_hash: str | None) -> bool:
        self.held += 1
        try:
            await self.release.wait()
        finally:
            self.held -= 1
        return False


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowHasher]:
    hasher = SlowHasher()

    async def verify(self: Passwords, password: str, password_hash: str | None) -> bool:
        return await hasher.verify(password, password_hash)

    monkeypatch.setattr(Passwords, "verify", verify)
    yield hasher
    hasher.release.set()


@pytest.mark.parametrize("hashing_concurrency", [2, 0])
async def test_currentuser_is_served_at_once_while_the_hashing_line_is_full(
    settings: Settings, mongo: Any, bus: Any, slow: SlowHasher, hashing_concurrency: int
) -> None:
    """Two sign-ins hashing and two waiting fill the hashing line (2 + 2) and a fifth is
    refused (503); currentuser, in the main line (2 places here), is answered at once. With
    HTTP_HASHING_CONCURRENCY=0 the sign-ins wait in the main line instead, and currentuser
    finds it full: what happened before the hashing line."""
    settings = settings.model_copy(
        update={
            "http_concurrency": 2,
            "http_queue": 2,
            "http_hashing_concurrency": hashing_concurrency,
            "http_hashing_queue": 2,
        }
    )
    body = {"email": "someone@test.com", "password": "wrong-password"}
    async with running(create_app(settings, mongo=mongo, bus=bus)) as client:
        signins = [asyncio.create_task(client.post("/api/users/signin", json=body))]
        await eventually(lambda: slow.held == 1)
        signins.append(asyncio.create_task(client.post("/api/users/signin", json=body)))
        await eventually(lambda: slow.held == 2)
        signins += [
            asyncio.create_task(client.post("/api/users/signin", json=body)) for _ in range(2)
        ]
        # The two waiting: a fifth finds the line full.
        extra = await asyncio.wait_for(client.post("/api/users/signin", json=body), 5)
        assert extra.status_code == 503
        current = await asyncio.wait_for(client.get("/api/users/currentuser"), 5)
        if hashing_concurrency:
            assert current.status_code == 200
            assert current.json() == {"currentUser": None}
        else:
            assert current.status_code == 503
        slow.release.set()
        answers = [(await asyncio.wait_for(task, 10)).status_code for task in signins]
        assert answers == [400] * 4
