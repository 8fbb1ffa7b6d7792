"""An order's window to pay: closed by the expiry (or payments' own sweep) unless a payment got
there first, one conditional write deciding; orders cancels only on payments' word."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Subject
from ticketing_common.mongo import Database, ensure_indexes
from ticketing_fakestripe import FakeStripeServer
from ticketing_payments import replica, windows
from ticketing_payments.charges import StripeCharger
from ticketing_payments.settings import Settings
from ticketing_testing.apps import only_error
from ticketing_testing.events import delivered, expiration_complete, order_cancelled
from ticketing_testing.mongo import recorded_nx_client
from ticketing_testing.waiting import published

PlaceOrder = Callable[..., Awaitable[str]]


async def pay(client: httpx.AsyncClient, order_id: str) -> httpx.Response:
    return await client.post("/api/payments", json={"token": "tok_visa", "orderId": order_id})


async def documents(db: Database, order_id: str) -> list[str]:
    """The statuses of the order's documents in the payments collection (at most one)."""
    return [p["status"] async for p in db["payments"].find({"orderId": order_id})]


async def test_the_expiry_closes_an_unpaid_window_and_payments_says_so_once(
    client: httpx.AsyncClient, place_order: PlaceOrder, bus: InMemoryBus, db: Database
) -> None:
    order_id = await place_order()
    await delivered(bus, expiration_complete(order_id))
    (closed,) = await published(bus, Subject.PAYMENT_WINDOW_CLOSED, 1)
    assert closed.data.order_id == order_id
    assert await documents(db, order_id) == ["window-closed"]
    # A redelivered expiry changes nothing and says nothing again.
    await delivered(bus, expiration_complete(order_id))
    await published(bus, Subject.PAYMENT_WINDOW_CLOSED, 1)
    # Too late to pay now, and the buyer is told so.
    res = await pay(client, order_id)
    assert res.status_code == 400
    assert only_error(res) == {"message": "Order has expired"}
    assert bus.published_on(Subject.PAYMENT_CREATED) == []


async def test_a_payment_accepted_before_the_expiry_keeps_the_window_for_good(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    bus: InMemoryBus,
    db: Database,
    fake_stripe: FakeStripeServer,
) -> None:
    """The buyer paid in time; the expiry then arrives (its event overtook payment:created on
    its way to orders, or the outage held both): orders is never told to cancel."""
    order_id = await place_order()
    assert (await pay(client, order_id)).status_code == 201
    await delivered(bus, expiration_complete(order_id))
    await published(bus, Subject.PAYMENT_CREATED, 1)
    assert bus.published_on(Subject.PAYMENT_WINDOW_CLOSED) == []
    assert await documents(db, order_id) == ["authorized"]
    (intent,) = [pi for pi in fake_stripe.state.intents() if pi["metadata"]["orderId"] == order_id]
    assert intent["status"] == "requires_capture"


async def test_an_expiry_landing_while_stripe_authorizes_wins_and_the_card_is_released(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    bus: InMemoryBus,
    db: Database,
    fake_stripe: FakeStripeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paid at the last moment, Stripe slow: the window closed before the payment was stored.
    The buyer gets a 400, not a 201 for a payment that would be voided behind their back."""
    order_id = await place_order()
    confirm = StripeCharger.confirm

    async def expiry_meanwhile(self: StripeCharger, *args: Any, **kwargs: Any) -> None:
        await confirm(self, *args, **kwargs)
        await delivered(bus, expiration_complete(order_id))

    monkeypatch.setattr(StripeCharger, "confirm", expiry_meanwhile)
    res = await pay(client, order_id)
    assert res.status_code == 400, res.text
    assert "expired" in only_error(res)["message"]
    assert await documents(db, order_id) == ["window-closed"]
    assert bus.published_on(Subject.PAYMENT_CREATED) == []
    await published(bus, Subject.PAYMENT_WINDOW_CLOSED, 1)
    (intent,) = [pi for pi in fake_stripe.state.intents() if pi["metadata"]["orderId"] == order_id]
    assert (intent["status"], intent["amount_received"]) == ("canceled", 0)


async def test_an_order_the_buyer_cancelled_is_not_closed_again(
    place_order: PlaceOrder, bus: InMemoryBus, db: Database
) -> None:
    order_id = await place_order()
    await delivered(bus, order_cancelled(order_id), expiration_complete(order_id))
    assert bus.published_on(Subject.PAYMENT_WINDOW_CLOSED) == []
    assert await documents(db, order_id) == []


async def test_an_expiry_ahead_of_its_order_closes_it_all_the_same(
    client: httpx.AsyncClient, place_order: PlaceOrder, bus: InMemoryBus, db: Database
) -> None:
    """order:created still on its way to payments (or dead-lettered here): nobody could pay
    without it, so the window closes at once and orders ends the order; the late order:created
    then finds a closed window. (Waiting for it held such an order open for ever.)"""
    order_id = str(ObjectId())
    await delivered(bus, expiration_complete(order_id))
    (closed,) = await published(bus, Subject.PAYMENT_WINDOW_CLOSED, 1)
    assert closed.data.order_id == order_id
    await place_order(order_id=order_id)
    res = await pay(client, order_id)
    assert res.status_code == 400
    assert only_error(res) == {"message": "Order has expired"}
    assert await documents(db, order_id) == ["window-closed"]
    assert await bus.dead_letters() == []


async def test_the_sweep_closes_only_open_windows_past_its_own_grace(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    bus: InMemoryBus,
    db: Database,
    settings: Settings,
    runtime: Any,
) -> None:
    """The safety net for a lost expiry event: minutes after expiresAt, never a paid order."""
    unpaid, paid = await place_order(), await place_order()
    assert (await pay(client, paid)).status_code == 201
    replica = await db["orders"].find_one({"_id": unpaid})
    expires_at = replica["expiresAt"].replace(tzinfo=UTC)
    grace = settings.expiry_sweep_grace_seconds
    assert grace >= 60
    now = expires_at + timedelta(seconds=grace - 1)
    assert await windows.sweep_once(runtime.outbox, settings, now=now) == 0
    now = expires_at + timedelta(seconds=grace + 1)
    assert await windows.sweep_once(runtime.outbox, settings, now=now) == 1
    assert await windows.sweep_once(runtime.outbox, settings, now=now) == 0
    (closed,) = await published(bus, Subject.PAYMENT_WINDOW_CLOSED, 1)
    assert closed.data.order_id == unpaid
    assert await documents(db, paid) == ["authorized"]


@pytest.mark.connected
async def test_overdue_windows_are_found_by_an_indexed_range_earliest_first(
    nx_mongo: Any,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    def order(status: str, minutes: int, **extra: Any) -> dict[str, Any]:
        return {
            "_id": str(ObjectId()),
            "userId": "u",
            "status": status,
            "version": 0,
            "priceCents": 100,
            "expiresAt": now + timedelta(minutes=minutes),
            **extra,
        }

    late, later = order("created", -20), order("created", -10)
    others = [
        order("created", 10),
        order("cancelled", -40),
        order("complete", -40),
        order("created", -40, window="paid"),
    ]
    async with recorded_nx_client(nx_mongo) as (client, queries):
        db = client["payments"]
        await ensure_indexes(db, replica.INDEXES)
        await db[replica.ORDERS].insert_many([later, *others, late])
        found = await replica.overdue_orders(db, cutoff=now, limit=10)
        assert found == [late["_id"], later["_id"]]
        assert await replica.overdue_orders(db, cutoff=now, limit=1) == [late["_id"]]
        assert queries.filters
