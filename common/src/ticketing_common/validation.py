"""Request-field types that fail with the SPEC's exact messages.

Pydantic's own messages ("Field required", "Input should be a valid string") are not the API's.
Each type here validates missing, mistyped and invalid input alike and raises one message, so a
route's schema reads `email: EmailField` and the 400 says `Email must be valid`. `RequestBody`
hands a missing field to its validator as None, which is how "missing" gets our message too.

Text that is not valid Unicode (a lone UTF-16 surrogate such as "\\ud800", which JSON allows)
cannot be stored (BSON is UTF-8) or hashed; `RequestBody` turns such a field into a missing one
before any field validator runs, so every field of every body is rejected with its own message
and no service can forget the check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from ticketing_common.money import MoneyError, to_decimal

__all__ = [
    "EmailField",
    "RequestBody",
    "money_check",
    "text_check",
]

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is not knowable
# at sign-up; this only rejects what is clearly not an address.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("value_error", message)


def _is_unicode(text: str) -> bool:
    """Encodable as UTF-8: no lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_control_characters(text: str) -> bool:
    # C0, DEL and C1: invisible, and a NUL or newline in a title or address is never meant.
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def _holds_invalid_text(value: object) -> bool:
    """Whether a JSON value holds, at any depth, a string that is not valid Unicode."""
    stack = [value]  # iterative: deeply nested input must not exhaust the recursion limit
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _email_check(message: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(message)
        email = value.strip().lower()
        if len(email) > 254 or not _is_unicode(email) or _has_control_characters(email):
            raise _fail(message)
        if not _EMAIL.match(email):
            raise _fail(message)
        return email

    return check


def text_check(
    message: str,
    *,
    min_len: int = 1,
    max_len: int = 200,
    strip: bool = True,
    allow_control: bool = False,
) -> Callable[[Any], str]:
    """A string of `min_len`..`max_len` characters (after stripping, unless `strip=False`),
    valid Unicode, without control characters unless `allow_control` (a password may hold any)."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(message)
        text = value.strip() if strip else value
        if not min_len <= len(text) <= max_len or not _is_unicode(text):
            raise _fail(message)
        if not allow_control and _has_control_characters(text):
            raise _fail(message)
        return text

    return check


def money_check(message: str, *, maximum: Decimal = Decimal("1000000")) -> Callable[[Any], Decimal]:
    """A positive amount in dollars, exact to the cent (the one policy of `money`)."""

    def check(value: Any) -> Decimal:
        if not isinstance(value, (int, float, str)):
            raise _fail(message)
        try:
            amount = to_decimal(value)
        except (MoneyError, ValueError):
            # ValueError too: str() of an int of thousands of digits refuses.
            raise _fail(message) from None
        if not 0 < amount <= maximum:
            raise _fail(message)
        return amount

    return check


class RequestBody(BaseModel):
    """Base of request schemas: unknown keys ignored, missing keys validated as None."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _missing_is_none(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # A field holding text that is not valid Unicode is treated as missing: its own
        # validator then rejects it with its message. Unknown keys are dropped unread.
        return {
            name: None if _holds_invalid_text(data.get(name)) else data.get(name)
            for name in cls.model_fields
        }


EmailField = Annotated[str, BeforeValidator(_email_check("Email must be valid"))]
