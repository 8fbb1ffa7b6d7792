"""`?limit=&before=` paging of a listing, parsed the same way (and with the same messages) by
every service: newest first, `before` the id of the last item of the previous page.

Parsed by hand from the raw strings rather than by FastAPI's `Query(ge=, le=)`, so that every
bad value is a 400 in the common error shape with one message per field, whatever was sent.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bson import ObjectId

from ticketing_common.errors import BadRequestError
from ticketing_common.mongo import parse_object_id

__all__ = [
    "Page",
    "paging",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
LIMIT_MESSAGE = f"Limit must be a whole number between 1 and {MAX_LIMIT}"

# Digits only (no sign, space or point), and few enough that int() is cheap.
_DIGITS = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class Page:
    limit: int
    # Items older than this id; None from the newest.
    before: ObjectId | None


def _parse_page(limit: str | None, before: str | None, *, item: str) -> Page:
    """The page asked for; BadRequestError on `limit` or `before` (the id of `item`, e.g. "a
    ticket") when malformed."""
    if limit is None:
        size = DEFAULT_LIMIT
    elif _DIGITS.fullmatch(limit) and 1 <= int(limit) <= MAX_LIMIT:
        size = int(limit)
    else:
        raise BadRequestError(LIMIT_MESSAGE, field="limit")
    cursor = None
    if before is not None:
        cursor = parse_object_id(before)
        if cursor is None:
            raise BadRequestError(f"Cursor must be the id of {item}", field="before")
    return Page(limit=size, before=cursor)


def paging(item: str) -> Callable[[str | None, str | None], Awaitable[Page]]:
    """A dependency reading `?limit=&before=` into a Page: `Annotated[Page, Depends(paging("a
    ticket"))]`. Async like every dependency here: FastAPI runs a plain function in a thread
    pool, a thread hop per request for no I/O at all."""

    async def page(limit: str | None = None, before: str | None = None) -> Page:
        return _parse_page(limit, before, item=item)

    return page
