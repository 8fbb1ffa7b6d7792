"""Stripe's PaymentIntents: create (confirming it with `confirm=true`), confirm, capture,
cancel, retrieve, list; each POST is run by `calls.execute` (idempotency, API version)."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Request, Response

from ticketing_fakestripe.amounts import part_of, required_amount
from ticketing_fakestripe.calls import Fake, execute
from ticketing_fakestripe.cards import card_of
from ticketing_fakestripe.charges import charge_card
from ticketing_fakestripe.errors import Json, Rejected
from ticketing_fakestripe.ledger import Ledger, new_id
from ticketing_fakestripe.wire import found, list_page

router = APIRouter(prefix="/v1/payment_intents")

MINIMUM_AMOUNT = 50  # Stripe's minimum charge in USD cents
# The statuses from which Stripe lets a PaymentIntent be confirmed, and canceled.
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = (*CONFIRMABLE, "requires_capture")
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")

RETURN_URL_REQUIRED = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. "
    "Because some of these payment methods might redirect your customer off of your page, you "
    "must provide a `return_url`. If you don't want to accept redirect-based payment methods, "
    "set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and "
    "Payment Intents."
)
ALREADY_SUCCEEDED = (
    "You cannot confirm this PaymentIntent because it has already succeeded after being "
    "previously confirmed."
)
NOT_CONFIRMABLE = (
    "You cannot confirm this PaymentIntent because it has a status of {status}. Only a "
    "PaymentIntent with one of the following statuses may be confirmed: requires_confirmation, "
    "requires_action, requires_payment_method."
)
NOT_CAPTURABLE = (
    "This PaymentIntent could not be captured because it has a status of {status}. Only a "
    "PaymentIntent with one of the following statuses may be captured: requires_capture."
)
NOT_CANCELABLE = (
    "You cannot cancel this PaymentIntent because it has a status of {status}. Only a "
    "PaymentIntent with one of the following statuses may be canceled: "
    + ", ".join(CANCELABLE)
    + "."
)
MISSING_PAYMENT_METHOD = (
    "You cannot confirm this PaymentIntent because it's missing a payment method. You can either "
    "update the PaymentIntent with a payment method and then confirm it again, or confirm it "
    "again directly with a payment method."
)


@router.post("")
async def create_payment_intent(request: Request) -> Response:
    """Create a PaymentIntent, confirming it when `confirm=true`."""
    return await execute(request, _create_intent)


@router.post("/{intent_id}/confirm")
async def confirm_payment_intent(intent_id: str, request: Request) -> Response:
    """Confirm a PaymentIntent: charge its card, or the one given now."""
    return await execute(request, lambda ledger, params: _confirm(ledger, intent_id, params))


@router.post("/{intent_id}/capture")
async def capture_payment_intent(intent_id: str, request: Request) -> Response:
    """Capture an authorized (`requires_capture`) PaymentIntent: the money moves."""
    return await execute(request, lambda ledger, params: _capture(ledger, intent_id, params))


@router.post("/{intent_id}/cancel")
async def cancel_payment_intent(intent_id: str, request: Request) -> Response:
    """Cancel a PaymentIntent not yet succeeded; an authorization is voided."""
    return await execute(request, lambda ledger, params: _cancel(ledger, intent_id, params))


@router.get("/{intent_id}")
async def retrieve_payment_intent(intent_id: str, fake: Fake) -> Response:
    """One PaymentIntent."""
    return found(fake.get(intent_id), "payment_intent", intent_id, param="intent")


@router.get("")
async def list_payment_intents(
    fake: Fake, limit: int = 10, starting_after: str | None = None
) -> Json:
    """PaymentIntents, newest first, paged like Stripe's lists."""
    return list_page("/v1/payment_intents", fake.intents(), limit, starting_after)


def _create_intent(ledger: Ledger, params: Json) -> tuple[int, Json]:
    amount = required_amount(params)
    if amount < MINIMUM_AMOUNT:
        raise Rejected("Amount must be at least $0.50 usd", "amount")
    currency = str(params.get("currency") or "").lower()
    if not currency:
        raise Rejected("Missing required param: currency.", "currency")
    confirm = params.get("confirm") == "true"
    capture_method = params.get("capture_method") or "automatic"
    if capture_method not in CAPTURE_METHODS:
        raise Rejected(
            f"Invalid capture_method: must be one of {', '.join(CAPTURE_METHODS)}",
            "capture_method",
        )
    automatic = params.get("automatic_payment_methods") or {}
    types = params.get("payment_method_types")
    no_redirects = (
        automatic.get("enabled") == "true" and automatic.get("allow_redirects") == "never"
    )
    # Stripe's default (dashboard payment methods) may redirect, so confirming needs a way back.
    redirectable = not types and not no_redirects
    if confirm and redirectable and not params.get("return_url"):
        raise Rejected(RETURN_URL_REQUIRED, None)
    card = card_of(params)

    intent_id = new_id("pi")
    intent: Json = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "amount_capturable": 0,
        "currency": currency,
        "created": int(time.time()),
        "livemode": False,
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
        "confirmation_method": "automatic",
        "capture_method": capture_method,
        "description": params.get("description"),
        "metadata": params.get("metadata") or {},
        "payment_method": new_id("pm") if card is not None else None,
        "payment_method_types": types or ["card"],
        "latest_charge": None,
        "last_payment_error": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "status": "requires_confirmation" if card is not None else "requires_payment_method",
    }
    ledger.intents[intent_id] = intent
    if redirectable:
        ledger.redirectable.add(intent_id)
    if card is not None:
        ledger.cards[intent_id] = card
    if confirm and card is not None:
        return charge_card(ledger, intent, card)
    return 200, dict(intent)


def _intent(ledger: Ledger, intent_id: str) -> Json:
    intent = ledger.intents.get(intent_id)
    if intent is None:
        raise Rejected(
            f"No such payment_intent: '{intent_id}'", "intent", status=404, code="resource_missing"
        )
    return intent


def _unexpected_state(message: str, intent: Json) -> Rejected:
    # Stripe sends the PaymentIntent as it stands with this error: the SDK exposes it as
    # `error.payment_intent`, which is how a caller learns what happened meanwhile.
    return Rejected(
        message, None, code="payment_intent_unexpected_state", payment_intent=dict(intent)
    )


def _confirm(ledger: Ledger, intent_id: str, params: Json) -> tuple[int, Json]:
    intent = _intent(ledger, intent_id)
    if intent["status"] not in CONFIRMABLE:
        raise _unexpected_state(
            ALREADY_SUCCEEDED
            if intent["status"] == "succeeded"
            else NOT_CONFIRMABLE.format(status=intent["status"]),
            intent,
        )
    if intent_id in ledger.redirectable and not params.get("return_url"):
        raise Rejected(RETURN_URL_REQUIRED, None)
    card = card_of(params) or ledger.cards.get(intent_id)
    if card is None:
        raise _unexpected_state(MISSING_PAYMENT_METHOD, intent)
    intent["payment_method"] = new_id("pm")
    return charge_card(ledger, intent, card)


def _capture(ledger: Ledger, intent_id: str, params: Json) -> tuple[int, Json]:
    intent = _intent(ledger, intent_id)
    if intent["status"] != "requires_capture":
        raise _unexpected_state(NOT_CAPTURABLE.format(status=intent["status"]), intent)
    capturable = intent["amount_capturable"]
    amount = part_of(
        params,
        "amount_to_capture",
        left=capturable,
        too_large=lambda amount: (
            f"The amount to capture ({amount}) cannot be greater than the amount capturable "
            f"({capturable})."
        ),
    )
    charge = ledger.charges[intent["latest_charge"]]
    # A partial capture releases the rest of the authorization, as on Stripe.
    charge.update(captured=True, amount_captured=amount)
    intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
    return 200, dict(intent)


def _cancel(ledger: Ledger, intent_id: str, params: Json) -> tuple[int, Json]:
    intent = _intent(ledger, intent_id)
    reason = params.get("cancellation_reason") or None
    if reason is not None and reason not in CANCELLATION_REASONS:
        raise Rejected(
            f"Invalid cancellation_reason: must be one of {', '.join(CANCELLATION_REASONS)}",
            "cancellation_reason",
        )
    if intent["status"] not in CANCELABLE:
        raise _unexpected_state(NOT_CANCELABLE.format(status=intent["status"]), intent)
    if intent["status"] == "requires_capture":
        # Voiding an authorization: Stripe refunds the uncaptured charge, so the hold on the
        # card is released and nothing was ever captured.
        charge = ledger.charges[intent["latest_charge"]]
        charge.update(amount_refunded=charge["amount"], refunded=True)
    ledger.cards.pop(intent_id, None)
    intent.update(
        status="canceled",
        amount_capturable=0,
        canceled_at=int(time.time()),
        cancellation_reason=reason,
    )
    return 200, dict(intent)
