"""Request and response bodies of /api/payments."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator
from pydantic_core import PydanticCustomError

from ticketing_common.validation import RequestBody, text_check

TOKEN_MESSAGE = "Token must be provided"  # noqa: S105 - a message
TOKEN_KIND_MESSAGE = "Token must be a card token (tok_...) or a payment method (pm_...)"  # noqa: S105 - a message
CARD_PREFIXES = ("tok_", "pm_")


def _card_token(value: object) -> str:
    token = text_check(TOKEN_MESSAGE, max_len=255)(value)
    # Only Stripe card tokens and PaymentMethods are charged; anything else would reach Stripe
    # just to be refused.
    if not token.startswith(CARD_PREFIXES):
        raise PydanticCustomError("value_error", TOKEN_KIND_MESSAGE)
    return token


CardToken = Annotated[str, BeforeValidator(_card_token)]
OrderId = Annotated[str, BeforeValidator(text_check("OrderId must be provided"))]


class PaymentCreate(RequestBody):
    token: CardToken
    orderId: OrderId


class PaymentPublic(BaseModel):
    id: str
