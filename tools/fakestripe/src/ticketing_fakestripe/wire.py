"""Stripe's wire format: bracketed forms in, JSON objects and paged lists out."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse

from ticketing_fakestripe.errors import Json, no_such


def decode_form(body: bytes) -> Json:
    """Stripe's bracketed form encoding to JSON: `a[b][0]=x` -> `{"a": {"b": ["x"]}}`."""
    root: Json = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    listed: Json = _listify(root)
    return listed


def _listify(node: Any) -> Any:
    # The SDK sends lists as maps with index keys (`a[0]`, `a[1]`).
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def list_page(url: str, items: list[Json], limit: int, starting_after: str | None) -> Json:
    """One page of a Stripe list of `items` (oldest first): newest first, after an id."""
    items = list(reversed(items))
    if starting_after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(starting_after) + 1 :] if starting_after in ids else []
    return {"object": "list", "url": url, "data": items[:limit], "has_more": len(items) > limit}


def respond(status: int, body: Json, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def found(obj: Json | None, kind: str, object_id: str, *, param: str) -> JSONResponse:
    """The object, or Stripe's 404 for an unknown id."""
    if obj is None:
        return respond(404, no_such(kind, object_id, param=param))
    return respond(200, obj)
