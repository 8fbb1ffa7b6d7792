"""Stripe's Refunds: create (by `payment_intent` or `charge`, whole or partial), retrieve, list.
A charge cannot be refunded beyond what was captured of it."""

from __future__ import annotations

import time
from typing import cast

from fastapi import APIRouter, Request, Response

from ticketing_fakestripe.amounts import part_of
from ticketing_fakestripe.calls import Fake, execute
from ticketing_fakestripe.errors import Json, Rejected
from ticketing_fakestripe.ledger import Ledger, new_id
from ticketing_fakestripe.wire import found, list_page

router = APIRouter(prefix="/v1/refunds")


@router.post("")
async def create_refund(request: Request) -> Response:
    """Refund a PaymentIntent's (or a charge's) money, all of what is left or `amount`."""
    return await execute(request, _create_refund)


@router.get("/{refund_id}")
async def retrieve_refund(refund_id: str, fake: Fake) -> Response:
    """One refund."""
    return found(fake.get_refund(refund_id), "refund", refund_id, param="refund")


@router.get("")
async def list_refunds(
    fake: Fake,
    limit: int = 10,
    starting_after: str | None = None,
    payment_intent: str | None = None,
) -> Json:
    """Refunds, newest first, of one PaymentIntent if given, paged like Stripe's lists."""
    refunds = fake.refunds()
    if payment_intent is not None:
        refunds = [r for r in refunds if r["payment_intent"] == payment_intent]
    return list_page("/v1/refunds", refunds, limit, starting_after)


def _charge_id_to_refund(ledger: Ledger, params: Json) -> str:
    """The charge a refund names: its own `charge`, or its `payment_intent`'s latest one."""
    intent_id = params.get("payment_intent")
    charge_id = params.get("charge")
    if intent_id:
        intent = ledger.intents.get(intent_id)
        if intent is None:
            raise Rejected(
                f"No such payment_intent: '{intent_id}'", "payment_intent", code="resource_missing"
            )
        if intent["status"] != "succeeded":
            raise Rejected(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                "payment_intent",
            )
        charge_id = intent["latest_charge"]
    elif not charge_id:
        raise Rejected(
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            None,
        )
    # As the form gave it (or the ledger holds it): looked up as it is, never converted.
    return cast(str, charge_id)


def _refundable_charge(ledger: Ledger, charge_id: str) -> Json:
    """The charge, if it has captured money not refunded yet."""
    charge = ledger.charges.get(charge_id)
    if charge is None:
        raise Rejected(f"No such charge: '{charge_id}'", "charge", code="resource_missing")
    if charge["status"] != "succeeded":
        raise Rejected(f"Charge {charge_id} has no successful payment to refund.", "charge")
    if charge["refunded"]:
        raise Rejected(
            f"Charge {charge_id} has already been refunded.",
            None,
            code="charge_already_refunded",
        )
    if not charge["captured"]:
        # Only what was captured can go back; an authorization is released by canceling its
        # PaymentIntent (the payments service's void), which the fake models alone.
        raise Rejected(
            f"Charge {charge_id} has not been captured: cancel its PaymentIntent instead.",
            "charge",
        )
    return charge


def _create_refund(ledger: Ledger, params: Json) -> tuple[int, Json]:
    charge_id = _charge_id_to_refund(ledger, params)
    charge = _refundable_charge(ledger, charge_id)
    left = charge["amount_captured"] - charge["amount_refunded"]
    amount = part_of(
        params,
        "amount",
        left=left,
        too_large=lambda amount: (
            f"Refund amount (${amount / 100:.2f}) is greater than unrefunded amount on charge "
            f"(${left / 100:.2f})"
        ),
    )
    refund: Json = {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "currency": charge["currency"],
        "charge": charge_id,
        "payment_intent": charge["payment_intent"],
        "created": int(time.time()),
        "metadata": params.get("metadata") or {},
        "reason": params.get("reason"),
        "status": "succeeded",
    }
    ledger.refunds[refund["id"]] = refund
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
    return 200, dict(refund)
