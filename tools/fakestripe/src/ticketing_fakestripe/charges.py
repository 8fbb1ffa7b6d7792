"""Charging a card for a PaymentIntent: the charge Stripe records, and the PaymentIntent's new
status (`succeeded`, `requires_capture` for a manual capture, or declined)."""

from __future__ import annotations

import time

from ticketing_fakestripe.cards import DECLINE_MESSAGE, Card
from ticketing_fakestripe.errors import Json
from ticketing_fakestripe.ledger import Ledger, new_id


def charge_card(ledger: Ledger, intent: Json, card: Card) -> tuple[int, Json]:
    """Charge the card for the PaymentIntent (both already valid): `succeeded`, or with manual
    capture only authorized (`requires_capture`), or declined."""
    ledger.cards.pop(intent["id"], None)  # used: a retry needs a card again
    manual = intent["capture_method"] == "manual"
    captured = not card.declines and not manual
    charge: Json = {
        "id": new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        # As on Stripe, an authorized charge has succeeded (the card said yes) and is not
        # captured: no money moved until the PaymentIntent is captured.
        "amount_captured": intent["amount"] if captured else 0,
        "captured": captured,
        "amount_refunded": 0,
        "currency": intent["currency"],
        "payment_intent": intent["id"],
        "created": int(time.time()),
        "livemode": False,
        "refunded": False,
        "paid": not card.declines,
        "status": "failed" if card.declines else "succeeded",
        "failure_code": "card_declined" if card.declines else None,
    }
    ledger.charges[charge["id"]] = charge
    intent["latest_charge"] = charge["id"]
    if card.declines:
        error: Json = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": DECLINE_MESSAGE,
            "charge": charge["id"],
        }
        intent.update(
            status="requires_payment_method", payment_method=None, last_payment_error=error
        )
        return 402, {"error": {**error, "payment_intent": dict(intent)}}
    if manual:
        intent.update(
            status="requires_capture", amount_capturable=intent["amount"], last_payment_error=None
        )
    else:
        intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
    return 200, dict(intent)
