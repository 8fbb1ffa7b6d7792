"""The payment lease and the one-payment-per-order rule, at the repository level."""

from datetime import UTC, datetime, timedelta

import pytest
from pymongo.errors import DuplicateKeyError

from ticketing_common.mongo import Database, ensure_indexes
from ticketing_payments import paying, repository
from ticketing_testing.apps import outbox_on


async def _order(db: Database, order_id: str = "order-1") -> str:
    await repository.insert_order(
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
    first = await paying.lease_order(db, order_id=order_id, seconds=60)
    assert first is not None
    assert await paying.lease_order(db, order_id=order_id, seconds=60) is None


async def test_a_released_lease_can_be_taken_again(db: Database) -> None:
    order_id = await _order(db)
    leased = await paying.lease_order(db, order_id=order_id, seconds=60)
    assert leased is not None
    await paying.release_order(db, order_id=order_id, lease=leased[0])
    assert await paying.lease_order(db, order_id=order_id, seconds=60) is not None


async def test_an_expired_lease_can_be_taken_and_its_holder_cannot_free_the_new_one(
    db: Database,
) -> None:
    order_id = await _order(db)
    past = datetime.now(UTC) - timedelta(minutes=5)
    stale = await paying.lease_order(db, order_id=order_id, seconds=60, now=past)
    assert stale is not None
    fresh = await paying.lease_order(db, order_id=order_id, seconds=60)
    assert fresh is not None
    await paying.release_order(db, order_id=order_id, lease=stale[0])
    assert await paying.lease_order(db, order_id=order_id, seconds=60) is None


async def test_an_unknown_order_cannot_be_leased(db: Database) -> None:
    assert await paying.lease_order(db, order_id="nope", seconds=60) is None


async def test_an_order_has_at_most_one_payment(db: Database) -> None:
    await ensure_indexes(db, repository.INDEXES)
    outbox = outbox_on(db, repository.PAYMENTS)
    payment = {"order_id": "order-1", "amount_cents": 1000, "currency": "usd"}
    await repository.create_payment(outbox, stripe_id="pi_1", **payment)
    with pytest.raises(DuplicateKeyError):
        await repository.create_payment(outbox, stripe_id="pi_2", **payment)
