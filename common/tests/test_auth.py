"""The session (auth.py): a route that needs a user gets the token's subject, and refuses anyone
not signed in."""

import httpx


async def test_a_signed_in_user_is_the_tokens_subject(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/things", json={"title": "t", "price": 1})
    assert (res.status_code, res.json()["by"]) == (201, "u1")  # `client` is signed in as u1


async def test_not_signed_in_is_401(client: httpx.AsyncClient) -> None:
    client.cookies.clear()
    res = await client.post("/api/things", json={"title": "t", "price": 1})
    assert res.status_code == 401
    assert res.json() == {"errors": [{"message": "Not authorized"}]}
