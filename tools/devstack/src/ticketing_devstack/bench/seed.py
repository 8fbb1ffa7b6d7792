"""The tickets the bench writes straight into the databases, and how many the figures need.

Set-up, not measured: the list's tickets go into the tickets database only (listed, never
bought); the tickets for sale into the tickets database and orders' replica, as their
ticket:created leaves them. Through the API that takes minutes on this machine, and what is
measured afterwards is the same either way.

The figures that buy share one pool of tickets for sale, written once for all of them: the
purchase flow takes its tickets first (flat out, then paced), the tracing figure those after
them, the expiry figure the last ones.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from ticketing_common.outbox import OUTBOX, PENDING
from ticketing_devstack.bench.harness import Harness

BATCH = 1000  # documents per insert


def ticket_doc(ticket_id: ObjectId, title: str, user_id: str) -> dict[str, Any]:
    """A document of the tickets service's `tickets`, as a ticket on sale is stored."""
    return {
        "_id": ticket_id,
        "title": title,
        "priceCents": 1000,
        "userId": user_id,
        "version": 0,
        "orderId": None,
        "releasedOrderIds": [],
        "createdAt": datetime.now(UTC),
        "listKey": str(ticket_id),
        # As an insert through the outbox leaves it (nx-27017 cannot add to a missing array).
        OUTBOX: [],
        PENDING: False,
    }


def replica_doc(ticket_id: ObjectId, title: str) -> dict[str, Any]:
    """A document of orders' replica of the tickets, as ticket:created leaves it."""
    return {
        "_id": str(ticket_id),
        "title": title,
        "priceCents": 1000,
        "version": 0,
        "reservedBy": None,
    }


async def fill_tickets(h: Harness, total: int) -> int:
    """Tickets written straight into the tickets database (no events: only listed, never
    bought) until it holds `total`; how many it holds."""
    coll = h.mongo["tickets"]["tickets"]
    have: int = await coll.count_documents({})
    while have < total:
        batch = min(BATCH, total - have)
        await coll.insert_many(
            [ticket_doc(ObjectId(), f"listed {have + i}", "bench-list") for i in range(batch)],
            ordered=False,
        )
        have += batch
    return have


async def tickets_for_sale(h: Harness, needed: int) -> None:
    """`needed` tickets of the seller (signed up if there is none yet), in the tickets
    database and in orders' replica: the harness's pool."""
    if h.seller is None:
        h.seller = (await h.users(1))[0]
    ids = [ObjectId() for _ in range(needed)]
    for start in range(0, needed, BATCH):
        chunk = ids[start : start + BATCH]
        await h.mongo["tickets"]["tickets"].insert_many(
            [ticket_doc(i, f"bench {i}", h.seller.id) for i in chunk]
        )
        await h.mongo["orders"]["tickets"].insert_many(
            [replica_doc(i, f"bench {i}") for i in chunk]
        )
    h.pool = [str(i) for i in ids]
    await h.settle()


def purchase_orders(args: argparse.Namespace) -> int:
    """The tickets the purchase flow buys, flat out then paced (none if not measured)."""
    if "purchase" not in args.only:
        return 0
    flat_out: int = sum(args.orders)
    return flat_out + sum(paced_orders(args).values())


def paced_orders(args: argparse.Namespace) -> dict[int, int]:
    """Orders per paced run, by rate (none unless the purchase flow is measured)."""
    if "purchase" not in args.only:
        return {}
    return {rate: round(rate * args.paced_seconds) for rate in args.paced_rates}


def tracing_orders(args: argparse.Namespace) -> int:
    """The tickets the tracing figure buys: its 1-buyer run with tracing on, then off."""
    return 2 * args.tracing_orders if "tracing" in args.only else 0


def expiry_orders(args: argparse.Namespace) -> int:
    """The tickets the expiry figure buys: two runs, paced then saturated (see `expiry`)."""
    return 2 * args.expiry_orders if "expiry" in args.only else 0
