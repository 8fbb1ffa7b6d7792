"""The body-size limit (limits.py): a body over it is a 413, whether announced or streamed."""

from collections.abc import AsyncIterator

import httpx


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/things", json={"title": "x" * 1_000_000, "price": 1})
    assert res.status_code == 413
    assert res.json() == {"errors": [{"message": "Request body too large"}]}


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1000

    res = await client.post(
        "/api/things", content=chunks(), headers={"content-type": "application/json"}
    )
    assert res.status_code == 413
