"""The orders replica: idempotent, version-checked, tolerant of any delivery order."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from ticketing_common.bus import RetryLater
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import (
    Event,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    Subject,
)
from ticketing_common.mongo import as_utc
from ticketing_common.testing import running
from ticketing_payments import listeners, repository
from ticketing_payments.charges import StripeCharger
from ticketing_payments.main import create_app
from ticketing_payments.settings import Settings

Created = Callable[..., Event[OrderCreated]]
Cancelled = Callable[..., Event[OrderCancelled]]
Completed = Callable[..., Event[OrderCompleted]]


async def replica(db: Any, order_id: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await db[repository.ORDERS].find_one({"_id": order_id})
    return doc


async def test_order_created_replicates_the_order(db: Any, created_event: Created) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=15)
    event = created_event(price=19.99, user_id="buyer-1", expires_at=expires)
    await listeners.on_order_created(db, event)
    doc = await replica(db, event.data.id)
    assert doc is not None
    assert doc["_id"] == event.data.id  # a string: a reference to another service's record
    assert (doc["userId"], doc["status"], doc["version"]) == ("buyer-1", "created", 0)
    assert doc["priceCents"] == 1999
    assert as_utc(doc["expiresAt"]) == expires
    assert doc["payingUntil"] is None


async def test_a_duplicate_order_created_changes_nothing(
    db: Any, charger: StripeCharger, created_event: Created, cancelled_event: Cancelled
) -> None:
    event = created_event(price=10.0)
    await listeners.on_order_created(db, event)
    await listeners.on_order_cancelled(db, charger, cancelled_event(event.data.id, version=1))
    await listeners.on_order_created(db, event)  # redelivered after the cancel
    doc = await replica(db, event.data.id)
    assert doc is not None
    assert (doc["status"], doc["version"]) == ("cancelled", 1)


async def test_order_cancelled_updates_the_status_and_version(
    db: Any, charger: StripeCharger, created_event: Created, cancelled_event: Cancelled
) -> None:
    event = created_event()
    await listeners.on_order_created(db, event)
    await listeners.on_order_cancelled(db, charger, cancelled_event(event.data.id, version=1))
    doc = await replica(db, event.data.id)
    assert doc is not None
    assert (doc["status"], doc["version"]) == ("cancelled", 1)


async def test_a_duplicate_order_cancelled_is_ignored(
    db: Any, charger: StripeCharger, created_event: Created, cancelled_event: Cancelled
) -> None:
    event = created_event()
    await listeners.on_order_created(db, event)
    cancel = cancelled_event(event.data.id, version=1)
    await listeners.on_order_cancelled(db, charger, cancel)
    await listeners.on_order_cancelled(db, charger, cancel)  # returns normally: ack
    doc = await replica(db, event.data.id)
    assert doc is not None
    assert doc["version"] == 1


async def test_order_cancelled_before_order_created_is_retried_later(
    db: Any, charger: StripeCharger, cancelled_event: Cancelled
) -> None:
    with pytest.raises(RetryLater):
        await listeners.on_order_cancelled(db, charger, cancelled_event(str(ObjectId()), version=1))


async def test_order_cancelled_from_the_future_is_retried_later(
    db: Any, charger: StripeCharger, created_event: Created, cancelled_event: Cancelled
) -> None:
    event = created_event()
    await listeners.on_order_created(db, event)
    with pytest.raises(RetryLater):
        await listeners.on_order_cancelled(db, charger, cancelled_event(event.data.id, version=2))
    doc = await replica(db, event.data.id)
    assert doc is not None
    assert (doc["status"], doc["version"]) == ("created", 0)


async def test_order_completed_updates_the_status_and_version(
    db: Any,
    charger: StripeCharger,
    created_event: Created,
    completed_event: Completed,
    cancelled_event: Cancelled,
) -> None:
    event = created_event()
    await listeners.on_order_created(db, event)
    await repository.create_payment(  # as the route leaves it: an authorization to capture
        db, order_id=event.data.id, stripe_id="pi_x", amount_cents=2000, currency="usd"
    )
    await db[repository.PAYMENTS].update_one(
        {"orderId": event.data.id}, {"$set": {"status": "captured"}}
    )
    completed = completed_event(event.data.id, version=1)
    await listeners.on_order_completed(db, charger, completed)
    await listeners.on_order_completed(db, charger, completed)  # a duplicate: ack
    # An order:cancelled of the same version cannot exist (orders changes an open order once);
    # were one delivered, it is taken for a duplicate and changes nothing.
    await listeners.on_order_cancelled(db, charger, cancelled_event(event.data.id, version=1))
    doc = await replica(db, event.data.id)
    assert doc is not None
    assert (doc["status"], doc["version"]) == ("complete", 1)


async def test_order_completed_before_order_created_is_retried_later(
    db: Any, charger: StripeCharger, completed_event: Completed
) -> None:
    with pytest.raises(RetryLater, match="not replicated"):
        await listeners.on_order_completed(db, charger, completed_event(str(ObjectId())))


async def test_order_completed_from_the_future_is_retried_later(
    db: Any, charger: StripeCharger, created_event: Created, completed_event: Completed
) -> None:
    event = created_event()
    await listeners.on_order_created(db, event)
    with pytest.raises(RetryLater, match="version 0"):
        await listeners.on_order_completed(db, charger, completed_event(event.data.id, version=2))
    doc = await replica(db, event.data.id)
    assert doc is not None
    assert (doc["status"], doc["version"]) == ("created", 0)


async def test_a_price_that_is_not_whole_cents_is_refused(db: Any, created_event: Created) -> None:
    event = created_event(price=19.999)
    with pytest.raises(ValueError, match="whole number of cents"):
        await listeners.on_order_created(db, event)
    assert await replica(db, event.data.id) is None


async def test_every_event_twice_and_out_of_order_through_the_bus(
    settings: Settings,
    mongo: Any,
    bus: InMemoryBus,
    db: Any,
    created_event: Created,
    cancelled_event: Cancelled,
) -> None:
    created = created_event(price=5.25)
    cancelled = cancelled_event(created.data.id, version=1)
    async with running(create_app(settings, mongo=mongo, bus=bus)):
        # The cancel first (its stream runs ahead), each delivered twice: republished events
        # get new ids, so JetStream's de-duplication cannot hide them; the handlers must.
        for event in (cancelled, _again(cancelled), created, _again(created)):
            await bus.publish(event)
        await bus.drain()
        assert await bus.dead_letters() == []
    doc = await replica(db, created.data.id)
    assert doc is not None
    assert (doc["status"], doc["version"], doc["priceCents"]) == ("cancelled", 1, 525)


async def test_the_service_subscribes_to_every_order_subject(
    settings: Settings,
    mongo: Any,
    bus: InMemoryBus,
    db: Any,
    created_event: Created,
    cancelled_event: Cancelled,
) -> None:
    event = created_event(status=OrderStatus.CREATED)
    app = create_app(settings, mongo=mongo, bus=bus)
    async with running(app):
        await bus.publish(event)
        await bus.publish(cancelled_event(event.data.id, version=1))
        await bus.drain()
        assert set(listeners.subscriptions(app.state.runtime)) == {
            Subject.ORDER_CREATED,
            Subject.ORDER_CANCELLED,
            Subject.ORDER_COMPLETED,
        }
    doc = await replica(db, event.data.id)
    assert doc is not None
    assert doc["status"] == "cancelled"


def _again(event: Event[Any]) -> Event[Any]:
    """The same event under a new envelope id: a redelivery JetStream cannot de-duplicate."""
    return event.model_copy(update={"id": uuid.uuid4().hex})
