"""The test cards the fake knows: Stripe's documented payment methods and tokens."""

from __future__ import annotations

from dataclasses import dataclass

from ticketing_fakestripe.errors import Json, Rejected

SUCCEEDING_PAYMENT_METHODS = frozenset({"pm_card_visa", "pm_card_mastercard"})
SUCCEEDING_TOKENS = frozenset({"tok_visa", "tok_mastercard"})
DECLINED_PAYMENT_METHODS = frozenset({"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"})
DECLINED_TOKENS = frozenset({"tok_chargeDeclined", "tok_visa_chargeDeclined"})
DECLINE_MESSAGE = "Your card was declined."


@dataclass(frozen=True)
class Card:
    """A test card: all the fake needs to know is whether charging it is declined."""

    declines: bool


def card_of(params: Json) -> Card | None:
    """The test card a request pays with, or None when it names none."""
    payment_method = params.get("payment_method")
    data = params.get("payment_method_data")
    if payment_method:
        return _known_card(
            payment_method,
            SUCCEEDING_PAYMENT_METHODS,
            DECLINED_PAYMENT_METHODS,
            what="PaymentMethod",
            param="payment_method",
        )
    if isinstance(data, dict):
        card = data.get("card")
        token = card.get("token") if data.get("type") == "card" and isinstance(card, dict) else None
        return _known_card(
            token,
            SUCCEEDING_TOKENS,
            DECLINED_TOKENS,
            what="token",
            param="payment_method_data[card][token]",
        )
    return None


def _known_card(
    name: object,
    succeeding: frozenset[object],
    declined: frozenset[object],
    *,
    what: str,
    param: str,
) -> Card:
    """The card a test payment method or token stands for; Stripe's 404 for any other."""
    if name in succeeding:
        return Card(declines=False)
    if name in declined:
        return Card(declines=True)
    raise Rejected(f"No such {what}: '{name}'", param, code="resource_missing")
