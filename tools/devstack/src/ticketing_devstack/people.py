"""People using the marketplace, over HTTP through the gateway, as a browser would: what the
e2e tests and the bench drive (the web client itself, which renders the pages, is client/)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


class User:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self.email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        self.id = ""

    async def __aenter__(self) -> User:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def signup(self) -> User:
        res = await self.http.post(
            "/api/users/signup", json={"email": self.email, "password": "password123"}
        )
        assert res.status_code == 201, res.text
        self.id = res.json()["id"]
        return self

    async def sell(self, title: str = "concert", price: float = 20) -> dict[str, Any]:
        res = await self.http.post("/api/tickets", json={"title": title, "price": price})
        assert res.status_code == 201, res.text
        ticket: dict[str, Any] = res.json()
        return ticket

    async def order(self, ticket_id: str) -> httpx.Response:
        return await self.http.post("/api/orders", json={"ticketId": ticket_id})

    async def pay(self, order_id: str, token: str = "tok_visa") -> httpx.Response:  # noqa: S107 - a test card
        return await self.http.post("/api/payments", json={"orderId": order_id, "token": token})

    async def get(self, path: str) -> Any:
        res = await self.http.get(path)
        assert res.status_code == 200, res.text
        return res.json()
