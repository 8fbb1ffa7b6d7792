"""The cancelled orders a ticket remembers (`releasedOrderIds`): kept while a late order:created
can still arrive, forgotten after the retry horizon in the same write that adds one, and read
in the format written before release times were kept (plain ids)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.mongo import Database
from ticketing_common.service import Runtime
from ticketing_testing.apps import outbox_on
from ticketing_testing.events import delivered, order_cancelled, order_created
from ticketing_testing.mongo import EVERY_MONGO
from ticketing_tickets import repository
from ticketing_tickets.repository import RELEASED, RELEASES, TICKETS

pytestmark = pytest.mark.parametrize("mongo", EVERY_MONGO, indirect=True)

HORIZON = timedelta(seconds=3600)  # NATS_RETRY_HORIZON_SECONDS' default, the app's setting
# More than a hundred: nx-27017 silently ignores an `$unset` of more than ~120 fields, so a
# prune must not be one `$unset` per entry.
OLD_ENTRIES = 500


def batch(order_id: str, at: datetime) -> dict[str, Any]:
    return {"ids": [order_id], "at": at}


async def a_ticket(db: Database, **fields: Any) -> str:
    """A ticket on sale, then with `fields` set as stored; its id."""
    outbox = outbox_on(db, TICKETS)
    ticket = await repository.create_ticket(outbox, title="t", price_cents=500, user_id="u")
    if fields:
        await db[TICKETS].update_one({"_id": ticket["_id"]}, {"$set": fields})
    return str(ticket["_id"])


async def stored(db: Database, ticket_id: str) -> repository.TicketDoc:
    ticket = await repository.get_ticket(db, ticket_id=ticket_id)
    assert ticket is not None
    return ticket


async def test_a_release_forgets_what_is_older_than_the_horizon_in_the_same_write(
    db: Database,
) -> None:
    now = datetime.now(UTC)
    old = [batch(str(ObjectId()), now - HORIZON - timedelta(minutes=1)) for _ in range(OLD_ENTRIES)]
    recent = batch("recent", now - HORIZON + timedelta(minutes=1))
    ticket_id = await a_ticket(db, orderId="holder", **{RELEASED: [*old, recent], RELEASES: 7})
    outbox = outbox_on(db, TICKETS)
    # One write: the release itself.
    released = await repository.release_ticket(
        outbox, ticket=await stored(db, ticket_id), order_id="holder", horizon=HORIZON, now=now
    )
    assert released is not None
    after = await stored(db, ticket_id)
    assert after["orderId"] is None
    assert repository.released_ids(after) == {"recent", "holder"}
    assert after[RELEASES] == 8
    # The same when the cancelled order does not hold the ticket.
    later = now + timedelta(minutes=2)
    assert await repository.remember_released(
        db, ticket=after, order_id="other", horizon=HORIZON, now=later
    )
    assert repository.released_ids(await stored(db, ticket_id)) == {"holder", "other"}


async def test_a_ticket_cancelled_over_and_over_stays_small(
    client: httpx.AsyncClient, runtime: Runtime[Any], bus: InMemoryBus
) -> None:
    """The listeners prune with the service's horizon: entries from long ago are gone after
    the next cancellation, whichever way it comes."""
    db = runtime.db
    long_ago = datetime.now(UTC) - 2 * HORIZON
    old = [batch(str(ObjectId()), long_ago) for _ in range(OLD_ENTRIES)]
    ticket_id = await a_ticket(db, **{RELEASED: old})
    for _ in range(3):
        order_id = str(ObjectId())
        await delivered(bus, order_created(order_id, ticket_id=ticket_id))
        assert (await stored(db, ticket_id))["orderId"] == order_id
        await delivered(bus, order_cancelled(order_id, ticket_id=ticket_id))
    await delivered(bus, order_cancelled("never-reserved", ticket_id=ticket_id))
    after = await stored(db, ticket_id)
    assert after["orderId"] is None
    assert len(after.get(RELEASED) or []) == 4


async def test_a_recent_release_still_blocks_a_late_order_created(
    client: httpx.AsyncClient, runtime: Runtime[Any], bus: InMemoryBus
) -> None:
    db = runtime.db
    almost = datetime.now(UTC) - HORIZON + timedelta(minutes=5)
    ticket_id = await a_ticket(db, **{RELEASED: [batch("late", almost)], RELEASES: 1})
    # Another cancellation prunes, and keeps it.
    await delivered(bus, order_cancelled("another", ticket_id=ticket_id))
    await delivered(bus, order_created("late", ticket_id=ticket_id))
    after = await stored(db, ticket_id)
    assert (after["orderId"], after["version"]) == (None, 0)
    assert repository.released_ids(after) == {"late", "another"}
    assert bus.published_on(Subject.TICKET_UPDATED) == []


async def test_tickets_stored_with_plain_ids_still_work(
    client: httpx.AsyncClient, runtime: Runtime[Any], bus: InMemoryBus
) -> None:
    """As stored before release times were kept: plain ids, no `releases` token."""
    db = runtime.db
    ticket_id = await a_ticket(db, **{RELEASED: ["old-1", "old-2"]})
    await db[TICKETS].update_one({"_id": ObjectId(ticket_id)}, {"$unset": {RELEASES: ""}})
    await delivered(bus, order_created("old-1", ticket_id=ticket_id))
    assert (await stored(db, ticket_id))["orderId"] is None
    await delivered(bus, order_created("new", ticket_id=ticket_id))
    assert (await stored(db, ticket_id))["orderId"] == "new"
    await delivered(bus, order_cancelled("new", ticket_id=ticket_id))
    after = await stored(db, ticket_id)
    assert after["orderId"] is None
    assert repository.released_ids(after) == {"old-1", "old-2", "new"}
    await delivered(bus, order_created("old-2", ticket_id=ticket_id))
    assert (await stored(db, ticket_id))["orderId"] is None
    # When the plain ids were released is unknown: they are kept one horizon from their first
    # rewrite, then forgotten like the rest.
    later = datetime.now(UTC) + HORIZON + timedelta(minutes=1)
    assert await repository.remember_released(
        db, ticket=after, order_id="x", horizon=HORIZON, now=later
    )
    assert repository.released_ids(await stored(db, ticket_id)) == {"x"}


async def test_a_reservation_read_before_a_pruning_release_fails(db: Database) -> None:
    """A release that prunes one entry and adds one leaves the list's size as it was: the
    reservation read before it must still notice it (the token), or it would reserve the ticket
    for an order already cancelled."""
    now = datetime.now(UTC)
    ticket_id = await a_ticket(db, **{RELEASED: [batch("old", now - 2 * HORIZON)]})
    read = await stored(db, ticket_id)
    assert await repository.remember_released(
        db, ticket=read, order_id="o1", horizon=HORIZON, now=now
    )
    assert len((await stored(db, ticket_id)).get(RELEASED) or []) == 1
    outbox = outbox_on(db, TICKETS)
    assert await repository.reserve_ticket(outbox, ticket=read, order_id="o1") is None


async def test_two_releases_from_one_read_never_lose_an_entry(db: Database) -> None:
    """Each write replaces the list whole: the second of two written from the same read loses,
    and written again from a fresh read keeps both."""
    ticket_id = await a_ticket(db, orderId="holder")
    read = await stored(db, ticket_id)
    assert await repository.remember_released(db, ticket=read, order_id="y", horizon=HORIZON)
    outbox = outbox_on(db, TICKETS)
    stale = await repository.release_ticket(outbox, ticket=read, order_id="holder", horizon=HORIZON)
    assert stale is None
    fresh = await repository.release_ticket(
        outbox, ticket=await stored(db, ticket_id), order_id="holder", horizon=HORIZON
    )
    assert fresh is not None
    assert repository.released_ids(await stored(db, ticket_id)) == {"y", "holder"}
