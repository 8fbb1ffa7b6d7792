"""Cross-service consistency, read straight from each service's database.

Used by the end-to-end tests after every fault: whatever broke, once the system is quiet these
must hold, or something was lost or applied twice.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from pymongo import AsyncMongoClient

LIVE = ("created", "awaiting:payment", "complete")


async def snapshot(mongo_urls: dict[str, str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    wanted = {
        "tickets": ["tickets"],
        "orders": ["orders", "tickets"],
        "payments": ["orders", "payments"],
    }
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for service, collections in wanted.items():
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_urls[service])
        try:
            db = client[service]
            out[service] = {c: [d async for d in db[c].find({})] for c in collections}
        finally:
            await client.close()
    return out


def problems(snap: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """Every broken invariant, in words; empty when the system is consistent."""
    found: list[str] = []
    tickets = {str(t["_id"]): t for t in snap["tickets"]["tickets"]}
    orders = {str(o["_id"]): o for o in snap["orders"]["orders"]}
    replica_tickets = {str(t["_id"]): t for t in snap["orders"]["tickets"]}
    replica_orders = {str(o["_id"]): o for o in snap["payments"]["orders"]}
    payments = snap["payments"]["payments"]

    for name, docs in (
        ("tickets", tickets),
        ("orders", orders),
        ("payments.orders", replica_orders),
    ):
        for doc_id, doc in docs.items():
            if doc.get("_outbox"):
                found.append(f"{name} {doc_id} still has unpublished events")

    live_by_ticket = Counter(o["ticketId"] for o in orders.values() if o["status"] in LIVE)
    for ticket_id, count in live_by_ticket.items():
        if count > 1:
            found.append(f"ticket {ticket_id} has {count} live orders")
    for ticket_id, ticket in tickets.items():
        order_id = ticket.get("orderId")
        if order_id is not None:
            order = orders.get(order_id)
            if order is None or order["status"] not in LIVE:
                found.append(f"ticket {ticket_id} reserved by non-live order {order_id}")
            elif order["ticketId"] != ticket_id:
                found.append(f"ticket {ticket_id} reserved by an order for another ticket")
        replica = replica_tickets.get(ticket_id)
        if replica is None or replica["version"] != ticket["version"]:
            found.append(f"orders' replica of ticket {ticket_id} is behind or missing")
    for order_id, order in orders.items():
        if (
            order["status"] in LIVE
            and tickets.get(order["ticketId"], {}).get("orderId") != order_id
        ):
            found.append(f"live order {order_id} does not hold its ticket")
        replica = replica_orders.get(order_id)
        if replica is None:
            found.append(f"payments has no replica of order {order_id}")
        elif order["status"] == "cancelled" and replica["status"] != "cancelled":
            found.append(f"payments' replica of cancelled order {order_id} is {replica['status']}")
    paid = Counter(p["orderId"] for p in payments)
    for order_id, order in orders.items():
        if order["status"] == "complete" and paid[order_id] != 1:
            found.append(f"complete order {order_id} has {paid[order_id]} payments")
    for order_id, count in paid.items():
        if count > 1:
            found.append(f"order {order_id} was paid {count} times")
        if orders.get(order_id, {}).get("status") != "complete":
            found.append(f"payment for order {order_id} that is not complete")
    return found


def mongo_urls(urls: dict[str, str]) -> dict[str, str]:
    parsed: dict[str, str] = json.loads(urls["mongo"])
    return parsed
