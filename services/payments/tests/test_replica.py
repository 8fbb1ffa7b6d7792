"""The payment attempt's lease on the order, at the replica level."""

from datetime import UTC, datetime, timedelta

from ticketing_common.mongo import Database
from ticketing_payments import replica


async def _order(db: Database, order_id: str = "order-1") -> str:
    await replica.insert_order(
        db,
        order_id=order_id,
        user_id="u",
        status="created",
        version=0,
        price_cents=1000,
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )
    return order_id


async def test_only_one_attempt_holds_the_lease(db: Database) -> None:
    order_id = await _order(db)
    first = await replica.lease_order(db, order_id=order_id, seconds=60)
    assert first is not None
    assert await replica.lease_order(db, order_id=order_id, seconds=60) is None


async def test_a_released_lease_can_be_taken_again(db: Database) -> None:
    order_id = await _order(db)
    leased = await replica.lease_order(db, order_id=order_id, seconds=60)
    assert leased is not None
    await replica.release_order(db, order_id=order_id, lease=leased[0])
    assert await replica.lease_order(db, order_id=order_id, seconds=60) is not None


async def test_an_expired_lease_can_be_taken_and_its_holder_cannot_free_the_new_one(
    db: Database,
) -> None:
    order_id = await _order(db)
    past = datetime.now(UTC) - timedelta(minutes=5)
    stale = await replica.lease_order(db, order_id=order_id, seconds=60, now=past)
    assert stale is not None
    fresh = await replica.lease_order(db, order_id=order_id, seconds=60)
    assert fresh is not None
    await replica.release_order(db, order_id=order_id, lease=stale[0])
    assert await replica.lease_order(db, order_id=order_id, seconds=60) is None


async def test_an_unknown_order_cannot_be_leased(db: Database) -> None:
    assert await replica.lease_order(db, order_id="nope", seconds=60) is None
