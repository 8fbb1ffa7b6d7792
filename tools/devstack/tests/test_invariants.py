"""The cross-service consistency check itself: it passes a consistent system and names each
broken payment invariant (complete <=> exactly one captured charge; cancelled => nothing
captured, nothing held; never charged twice)."""

from typing import Any

import httpx

from ticketing_devstack.invariants import FAKE_STRIPE_KEY, Snapshot, payment_intents, problems
from ticketing_fakestripe import FakeStripeServer

PAYMENT_STATUS = {"complete": "captured", "cancelled": "voided"}
INTENT_STATUS = {"complete": "succeeded", "cancelled": "canceled"}


def world(**orders: str) -> Snapshot:
    """A consistent system with one paid-for order per `name=status` ("created" is unpaid)."""
    snap: Snapshot = {
        "tickets": {"tickets": []},
        "orders": {"orders": [], "tickets": []},
        "payments": {"orders": [], "payments": []},
        "stripe": {"payment_intents": []},
    }
    for order_id, status in orders.items():
        ticket_id = f"t-{order_id}"
        live = status != "cancelled"
        snap["tickets"]["tickets"].append(
            {"_id": ticket_id, "version": 1, "orderId": order_id if live else None}
        )
        snap["orders"]["tickets"].append({"_id": ticket_id, "version": 1})
        snap["orders"]["orders"].append({"_id": order_id, "status": status, "ticketId": ticket_id})
        snap["payments"]["orders"].append({"_id": order_id, "status": status})
        if status == "created":
            continue
        intent_id = f"pi_{order_id}"
        snap["payments"]["payments"].append(
            {
                "orderId": order_id,
                "stripeId": intent_id,
                "amountCents": 1999,
                "status": PAYMENT_STATUS[status],
            }
        )
        snap["stripe"]["payment_intents"].append(
            {
                "id": intent_id,
                "amount": 1999,
                "amount_received": 1999 if status == "complete" else 0,
                "status": INTENT_STATUS[status],
                "metadata": {"orderId": order_id},
            }
        )
    return snap


def payment(snap: Snapshot, order_id: str) -> dict[str, Any]:
    [found] = [p for p in snap["payments"]["payments"] if p["orderId"] == order_id]
    return found


def intent(snap: Snapshot, order_id: str) -> dict[str, Any]:
    [found] = [i for i in snap["stripe"]["payment_intents"] if i["metadata"]["orderId"] == order_id]
    return found


def test_a_consistent_system_has_no_problems() -> None:
    assert problems(world(paid="complete", dropped="cancelled", open="created")) == []


def test_without_stripe_the_databases_are_still_checked() -> None:
    snap = world(paid="complete")
    del snap["stripe"]
    assert problems(snap) == []
    payment(snap, "paid")["status"] = "authorized"
    assert problems(snap) == ["complete order paid has payments ['authorized'], not one captured"]


def test_a_cancelled_order_with_captured_money_is_a_problem() -> None:
    """The bug of issue 8: paid, then cancelled (and refunded): money was taken."""
    snap = world(dropped="cancelled")
    payment(snap, "dropped")["status"] = "captured"
    intent(snap, "dropped").update(status="succeeded", amount_received=1999)
    assert problems(snap) == [
        "cancelled order dropped has a captured payment",
        "cancelled order dropped was charged at Stripe",
    ]


def test_a_cancelled_order_still_holding_an_authorization_is_a_problem() -> None:
    snap = world(dropped="cancelled")
    payment(snap, "dropped")["status"] = "authorized"
    intent(snap, "dropped")["status"] = "requires_capture"
    assert problems(snap) == [
        "cancelled order dropped still holds an authorization",
        "cancelled order dropped still holds an authorization at Stripe",
    ]


def test_a_complete_order_not_captured_is_a_problem() -> None:
    snap = world(paid="complete")
    payment(snap, "paid")["status"] = "authorized"
    intent(snap, "paid").update(status="requires_capture", amount_received=0)
    assert problems(snap) == [
        "complete order paid has payments ['authorized'], not one captured",
        "complete order paid has 0 captured charges",
    ]


def test_being_charged_twice_is_a_problem() -> None:
    snap = world(paid="complete")
    snap["stripe"]["payment_intents"].append({**intent(snap, "paid"), "id": "pi_second"})
    snap["payments"]["payments"].append({**payment(snap, "paid"), "stripeId": "pi_second"})
    assert problems(snap) == [
        "order paid was paid 2 times",
        "complete order paid has payments ['captured', 'captured'], not one captured",
        "order paid has 2 PaymentIntents at Stripe",
        "order paid was charged 2 times at Stripe",
        "complete order paid has 2 captured charges",
    ]


def test_a_capture_of_another_intent_or_amount_is_a_problem() -> None:
    snap = world(paid="complete", other="complete")
    payment(snap, "paid")["stripeId"] = "pi_elsewhere"
    payment(snap, "other")["amountCents"] = 2000
    assert problems(snap) == [
        "complete order paid was captured by a payment not recorded",
        "complete order other was captured for the wrong amount",
    ]


def test_an_open_order_with_money_taken_or_a_payment_not_applied_is_a_problem() -> None:
    snap = world(open="created")
    snap["payments"]["payments"].append(
        {"orderId": "open", "stripeId": "pi_open", "amountCents": 1999, "status": "authorized"}
    )
    snap["stripe"]["payment_intents"].append(
        {
            "id": "pi_open",
            "amount": 1999,
            "amount_received": 1999,
            "status": "succeeded",
            "metadata": {"orderId": "open"},
        }
    )
    assert problems(snap) == [
        "open order open has a payment (['authorized']) orders did not apply",
        "created order open was charged at Stripe",
    ]


def test_payments_replica_of_a_decided_order_must_agree() -> None:
    snap = world(paid="complete")
    snap["payments"]["orders"][0]["status"] = "created"
    assert problems(snap) == ["payments' replica of complete order paid is created"]


async def test_stripes_payment_intents_are_read_page_by_page(
    fake_stripe: FakeStripeServer,
) -> None:
    headers = {"Authorization": f"Bearer {FAKE_STRIPE_KEY}"}
    async with httpx.AsyncClient(base_url=fake_stripe.base_url, headers=headers) as client:
        for n in range(105):  # more than one page of 100
            data = {"amount": str(100 + n), "currency": "usd"}
            res = await client.post("/v1/payment_intents", data=data)
            assert res.status_code == 200, res.text
    intents = await payment_intents(fake_stripe.base_url)
    assert sorted(i["amount"] for i in intents) == list(range(100, 205))
