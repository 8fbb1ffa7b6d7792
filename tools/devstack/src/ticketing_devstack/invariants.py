"""Cross-service consistency, read straight from each service's database (and from Stripe, when
it is the local fake).

Used by the end-to-end tests after every fault: whatever broke, once the system is quiet these
must hold, or something was lost or applied twice. The payment invariants (SPEC, Payments): a
complete order has exactly one captured charge, a cancelled one has nothing captured (and no
authorization left holding the buyer's money), and nobody is ever charged twice.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import httpx
from pymongo import AsyncMongoClient

LIVE = ("created", "awaiting:payment", "complete")
OPEN = ("created", "awaiting:payment")
# The key the local stack gives payments and the fake (which accepts any test key).
FAKE_STRIPE_KEY = "sk_test_local"

Snapshot = dict[str, dict[str, list[dict[str, Any]]]]


async def snapshot(mongo_urls: dict[str, str], stripe_url: str | None = None) -> Snapshot:
    """Every document the invariants need; with `stripe_url`, Stripe's PaymentIntents too."""
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
    if stripe_url is not None:
        out["stripe"] = {"payment_intents": await payment_intents(stripe_url)}
    return out


async def payment_intents(stripe_url: str) -> list[dict[str, Any]]:
    """Every PaymentIntent, through Stripe's list API, page by page."""
    intents: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    headers = {"Authorization": f"Bearer {FAKE_STRIPE_KEY}"}
    async with httpx.AsyncClient(base_url=stripe_url, headers=headers, timeout=10) as client:
        while True:
            res = await client.get("/v1/payment_intents", params=params)
            res.raise_for_status()
            page = res.json()
            intents.extend(page["data"])
            if not page["has_more"] or not page["data"]:
                return intents
            params["starting_after"] = page["data"][-1]["id"]


def problems(snap: Snapshot) -> list[str]:
    """Every broken invariant, in words; empty when the system is consistent."""
    found: list[str] = []
    tickets = {str(t["_id"]): t for t in snap["tickets"]["tickets"]}
    every_order = snap["orders"]["orders"]
    # An order that never confirmed its reservation was never announced nor shown to anyone;
    # once quiet there are none left (withdrawn by the next buyer, or swept after expiry).
    for o in every_order:
        if o.get("confirmed") is False:
            found.append(f"order {o['_id']} never confirmed its reservation")
    orders = {str(o["_id"]): o for o in every_order if o.get("confirmed") is not False}
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
        elif order["status"] not in OPEN and replica["status"] != order["status"]:
            found.append(
                f"payments' replica of {order['status']} order {order_id} is {replica['status']}"
            )
    found += payment_problems(orders, payments)
    if "stripe" in snap:
        found += stripe_problems(orders, payments, snap["stripe"]["payment_intents"])
    return found


def payment_problems(orders: dict[str, Any], payments: list[dict[str, Any]]) -> list[str]:
    """Orders' decisions against payments' records: captured exactly when complete."""
    found: list[str] = []
    by_order: dict[str, list[str]] = defaultdict(list)
    for payment in payments:
        by_order[payment["orderId"]].append(payment.get("status", "?"))
    for order_id, order in orders.items():
        statuses = by_order.get(order_id, [])
        if len(statuses) > 1:
            found.append(f"order {order_id} was paid {len(statuses)} times")
        if order["status"] == "complete" and statuses != ["captured"]:
            found.append(f"complete order {order_id} has payments {statuses}, not one captured")
        elif order["status"] == "cancelled":
            if "captured" in statuses:
                found.append(f"cancelled order {order_id} has a captured payment")
            if "authorized" in statuses:
                found.append(f"cancelled order {order_id} still holds an authorization")
        elif order["status"] in OPEN and statuses:
            # payment:created or payment:window-closed not applied yet: fine for a moment, a
            # lost event if it stays.
            found.append(f"open order {order_id} has a payment ({statuses}) orders did not apply")
    for order_id in by_order.keys() - orders.keys():
        found.append(f"payment for order {order_id} that orders does not have")
    return found


def stripe_problems(
    orders: dict[str, Any], payments: list[dict[str, Any]], intents: list[dict[str, Any]]
) -> list[str]:
    """Orders' decisions against the money at Stripe: one PaymentIntent per order, captured
    exactly when the order is complete (by the payment payments recorded), none held when it
    is cancelled."""
    found: list[str] = []
    recorded = {p["orderId"]: p for p in payments}
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for intent in intents:
        by_order[intent.get("metadata", {}).get("orderId", "?")].append(intent)
    for order_id, mine in by_order.items():
        status = orders.get(order_id, {}).get("status", "unknown")
        captured = [pi for pi in mine if pi["status"] == "succeeded" or pi["amount_received"]]
        if len(mine) > 1:
            found.append(f"order {order_id} has {len(mine)} PaymentIntents at Stripe")
        if len(captured) > 1:
            found.append(f"order {order_id} was charged {len(captured)} times at Stripe")
        if captured and status != "complete":
            found.append(f"{status} order {order_id} was charged at Stripe")
        if status == "cancelled" and any(pi["status"] == "requires_capture" for pi in mine):
            found.append(f"cancelled order {order_id} still holds an authorization at Stripe")
    for order_id, order in orders.items():
        if order["status"] != "complete":
            continue
        captured = [
            pi
            for pi in by_order.get(order_id, [])
            if pi["status"] == "succeeded" and pi["amount_received"] == pi["amount"]
        ]
        payment = recorded.get(order_id)
        if len(captured) != 1:
            found.append(f"complete order {order_id} has {len(captured)} captured charges")
        elif payment is None or payment["stripeId"] != captured[0]["id"]:
            found.append(f"complete order {order_id} was captured by a payment not recorded")
        elif payment["amountCents"] != captured[0]["amount_received"]:
            found.append(f"complete order {order_id} was captured for the wrong amount")
    return found


def mongo_urls(urls: dict[str, str]) -> dict[str, str]:
    parsed: dict[str, str] = json.loads(urls["mongo"])
    return parsed
