"""Request-field types that fail with the SPEC's exact messages.

Pydantic's own messages ("Field required", "Input should be a valid string") are not the API's.
Each type here validates missing, mistyped and invalid input alike and raises one message, so a
route's schema reads `email: EmailField` and the 400 says `Email must be valid`. `RequestBody`
hands a missing field to its validator as None, which is how "missing" gets our message too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is not knowable
# at sign-up; this only rejects what is clearly not an address.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("value_error", message)


def email_check(message: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(message)
        email = value.strip().lower()
        if len(email) > 254 or not _EMAIL.match(email):
            raise _fail(message)
        return email

    return check


def text_check(
    message: str, *, min_len: int = 1, max_len: int = 200, strip: bool = True
) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(message)
        text = value.strip() if strip else value
        if not min_len <= len(text) <= max_len:
            raise _fail(message)
        return text

    return check


def money_check(message: str, *, maximum: Decimal = Decimal("1000000")) -> Callable[[Any], Decimal]:
    """A positive amount in dollars with at most two decimals, as an exact Decimal."""

    def check(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _fail(message)
        try:
            # str() first: Decimal(19.99) is 19.989999..., Decimal("19.99") is exact.
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise _fail(message) from None
        if not amount.is_finite() or amount <= 0 or amount > maximum:
            raise _fail(message)
        if amount != amount.quantize(Decimal("0.01")):
            raise _fail(message)
        return amount.quantize(Decimal("0.01"))

    return check


class RequestBody(BaseModel):
    """Base of request schemas: unknown keys ignored, missing keys validated as None."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _missing_is_none(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: None for name in cls.model_fields} | data
        return data


EmailField = Annotated[str, BeforeValidator(email_check("Email must be valid"))]
