"""The orders replica: idempotent, version-checked, tolerant of any delivery order."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from bson import ObjectId

from ticketing_common.bus import RetryLater
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import (
    OrderStatus,
    Subject,
)
from ticketing_common.mongo import Database, as_utc
from ticketing_payments import listeners, replica, repository
from ticketing_payments.charges import StripeCharger
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings
from ticketing_testing.apps import outbox_on, running
from ticketing_testing.events import order_cancelled, order_completed, order_created, redelivered


def runtime_on(db: Database, charger: StripeCharger | None = None) -> Any:
    """What the event handlers use of the service's runtime, without a running app."""
    return SimpleNamespace(db=db, outbox=outbox_on(db, repository.PAYMENTS), charger=charger)


async def replica_of(db: Database, order_id: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await db[replica.ORDERS].find_one({"_id": order_id})
    return doc


async def replicated(db: Database, order_id: str) -> dict[str, Any]:
    """The order's replica, which must exist."""
    doc = await replica_of(db, order_id)
    assert doc is not None
    return doc


async def status_of(db: Database, order_id: str) -> tuple[str, int]:
    """The replicated order's status and version: what each event moves on."""
    doc = await replicated(db, order_id)
    return doc["status"], doc["version"]


async def test_order_created_replicates_the_order(db: Database) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=15)
    event = order_created(price=19.99, user_id="buyer-1", expires_at=expires)
    await listeners.on_order_created(runtime_on(db), event)
    doc = await replicated(db, event.data.id)
    assert doc["_id"] == event.data.id  # a string: a reference to another service's record
    assert (doc["userId"], doc["status"], doc["version"]) == ("buyer-1", "created", 0)
    assert doc["priceCents"] == 1999
    assert as_utc(doc["expiresAt"]) == expires
    assert doc["payingUntil"] is None


async def test_a_duplicate_order_created_changes_nothing(
    db: Database, charger: StripeCharger
) -> None:
    event = order_created(price=10.0)
    await listeners.on_order_created(runtime_on(db), event)
    await listeners.on_order_cancelled(
        runtime_on(db, charger), order_cancelled(event.data.id, version=1)
    )
    await listeners.on_order_created(runtime_on(db), event)  # redelivered after the cancel
    assert await status_of(db, event.data.id) == ("cancelled", 1)


async def test_order_cancelled_updates_the_status_and_version(
    db: Database, charger: StripeCharger
) -> None:
    event = order_created()
    await listeners.on_order_created(runtime_on(db), event)
    await listeners.on_order_cancelled(
        runtime_on(db, charger), order_cancelled(event.data.id, version=1)
    )
    assert await status_of(db, event.data.id) == ("cancelled", 1)


async def test_a_duplicate_order_cancelled_is_ignored(db: Database, charger: StripeCharger) -> None:
    event = order_created()
    await listeners.on_order_created(runtime_on(db), event)
    cancel = order_cancelled(event.data.id, version=1)
    await listeners.on_order_cancelled(runtime_on(db, charger), cancel)
    await listeners.on_order_cancelled(runtime_on(db, charger), cancel)  # returns normally: ack
    doc = await replicated(db, event.data.id)
    assert doc["version"] == 1


async def test_order_cancelled_before_order_created_is_retried_later(
    db: Database, charger: StripeCharger
) -> None:
    with pytest.raises(RetryLater):
        await listeners.on_order_cancelled(
            runtime_on(db, charger), order_cancelled(str(ObjectId()), version=1)
        )


async def test_order_cancelled_from_the_future_is_retried_later(
    db: Database, charger: StripeCharger
) -> None:
    event = order_created()
    await listeners.on_order_created(runtime_on(db), event)
    with pytest.raises(RetryLater):
        await listeners.on_order_cancelled(
            runtime_on(db, charger), order_cancelled(event.data.id, version=2)
        )
    assert await status_of(db, event.data.id) == ("created", 0)


async def test_order_completed_updates_the_status_and_version(
    db: Database,
    charger: StripeCharger,
) -> None:
    event = order_created()
    await listeners.on_order_created(runtime_on(db), event)
    await repository.create_payment(  # as the route leaves it: an authorization to capture
        outbox_on(db, repository.PAYMENTS),
        order_id=event.data.id,
        stripe_id="pi_x",
        amount_cents=2000,
        currency="usd",
    )
    await db[repository.PAYMENTS].update_one(
        {"orderId": event.data.id}, {"$set": {"status": "captured"}}
    )
    completed = order_completed(event.data.id, version=1)
    await listeners.on_order_completed(runtime_on(db, charger), completed)
    await listeners.on_order_completed(runtime_on(db, charger), completed)  # a duplicate: ack
    # An order:cancelled of the same version cannot exist (orders changes an open order once);
    # were one delivered, it is taken for a duplicate and changes nothing.
    await listeners.on_order_cancelled(
        runtime_on(db, charger), order_cancelled(event.data.id, version=1)
    )
    assert await status_of(db, event.data.id) == ("complete", 1)


async def test_order_completed_before_order_created_is_retried_later(
    db: Database, charger: StripeCharger
) -> None:
    with pytest.raises(RetryLater, match="not replicated"):
        await listeners.on_order_completed(
            runtime_on(db, charger), order_completed(str(ObjectId()))
        )


async def test_order_completed_from_the_future_is_retried_later(
    db: Database, charger: StripeCharger
) -> None:
    event = order_created()
    await listeners.on_order_created(runtime_on(db), event)
    with pytest.raises(RetryLater, match="version 0"):
        await listeners.on_order_completed(
            runtime_on(db, charger), order_completed(event.data.id, version=2)
        )
    assert await status_of(db, event.data.id) == ("created", 0)


async def test_a_price_that_is_not_whole_cents_is_refused(db: Database) -> None:
    event = order_created(price=19.999)
    with pytest.raises(ValueError, match="whole number of cents"):
        await listeners.on_order_created(runtime_on(db), event)
    assert await replica_of(db, event.data.id) is None


async def test_every_event_twice_and_out_of_order_through_the_bus(
    settings: Settings,
    mongo: Any,
    bus: InMemoryBus,
    db: Database,
) -> None:
    created = order_created(price=5.25)
    cancelled = order_cancelled(created.data.id, version=1)
    async with running(create_app(settings, mongo=mongo, bus=bus)):
        # The cancel first (its stream runs ahead), each delivered twice: republished events
        # get new ids, so JetStream's de-duplication cannot hide them; the handlers must.
        for event in (cancelled, redelivered(cancelled), created, redelivered(created)):
            await bus.publish(event)
        await bus.drain()
        assert await bus.dead_letters() == []
    doc = await replicated(db, created.data.id)
    assert (doc["status"], doc["version"], doc["priceCents"]) == ("cancelled", 1, 525)


async def test_the_service_subscribes_to_every_order_subject(
    settings: Settings,
    mongo: Any,
    bus: InMemoryBus,
    db: Database,
) -> None:
    event = order_created(status=OrderStatus.CREATED)
    app = create_app(settings, mongo=mongo, bus=bus)
    async with running(app):
        await bus.publish(event)
        await bus.publish(order_cancelled(event.data.id, version=1))
        await bus.drain()
        assert set(listeners.HANDLERS) == {
            Subject.ORDER_CREATED,
            Subject.ORDER_CANCELLED,
            Subject.ORDER_COMPLETED,
            Subject.EXPIRATION_COMPLETE,
        }
    doc = await replicated(db, event.data.id)
    assert doc["status"] == "cancelled"
