"""The one-payment-per-order rule, at the repository level."""

import pytest
from pymongo.errors import DuplicateKeyError

from ticketing_common.mongo import Database, ensure_indexes
from ticketing_payments import repository
from ticketing_testing.apps import outbox_on


async def test_an_order_has_at_most_one_payment(db: Database) -> None:
    await ensure_indexes(db, repository.INDEXES)
    outbox = outbox_on(db, repository.PAYMENTS)
    payment = {"order_id": "order-1", "amount_cents": 1000, "currency": "usd"}
    await repository.create_payment(outbox, stripe_id="pi_1", **payment)
    with pytest.raises(DuplicateKeyError):
        await repository.create_payment(outbox, stripe_id="pi_2", **payment)
