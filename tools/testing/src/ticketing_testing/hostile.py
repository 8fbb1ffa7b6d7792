"""Hostile input for the property-based tests: arbitrary JSON texts and request bodies."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Every example runs against the one app of the test (its state accumulates, as in production).
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON = {"content-type": "application/json"}


# Strings that have broken services: a lone surrogate (valid JSON, not encodable as UTF-8), NUL
# and other controls, Mongo operators as text, and values that are valid so the request gets
# past validation and reaches the database and the password hasher.
NASTY_TEXT = [
    "x\ud800@example.com",
    "\udfff",
    "a\ud83d",
    "\x00",
    "a\x00b@example.com",
    "line\nbreak",
    "\u202etxet",
    "$gt",
    "",
    " ",
    "a@b.co",
    "password123",
    "Jazz night",
    "tok_visa",
    "tok_chargeDeclined",
    "pm_card_visa",
    "65f000000000000000000000",
    "x" * 5000,
]
OPERATORS = ['{"$gt": ""}', '{"$ne": null}', '{"$where": "sleep(1000)"}', '{"$regex": ".*"}']


def hostile_json(extra_text: list[str] | None = None) -> Any:
    """A hypothesis strategy of JSON *texts* (str): every JSON type, surrogates and control
    characters, numbers no float holds, deep nesting, operator objects. Texts, not values, so
    numbers Python refuses to print (5,000 digits) are sent as they would arrive."""
    # exclude_categories=() lets lone surrogates (category Cs) in; the default leaves them out.
    text = st.text(st.characters(exclude_categories=()), max_size=30) | st.sampled_from(
        NASTY_TEXT + (extra_text or [])
    )
    scalars = st.one_of(
        st.just("null"),
        st.sampled_from(["true", "false"]),
        st.integers().map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
        st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-0", "0.001"]),
        st.integers(20, 6000).map(lambda n: "9" * n),
        text.map(json.dumps),
        st.sampled_from(OPERATORS),
        st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
        st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
            | st.dictionaries(text.map(json.dumps), inner, max_size=3).map(
                lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}"
            )
        ),
        max_leaves=6,
    )


# Characters spliced into otherwise valid text: it must still be refused cleanly, or kept intact.
HOSTILE_CHARACTERS = [
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\x00",
    "\x1f",
    "\x7f",
    "\u202e",
    "\ufeff",
]


def hostile_bodies(valid: dict[str, str]) -> Any:
    """Request bodies (bytes) for a route whose valid body is `valid` (field -> JSON text).

    Mostly one field at a time made hostile while the others stay valid, so the bad value gets
    as far as it can (the database, the password hasher, Stripe); also several at once, unknown
    and operator keys, and bodies that are not an object, not JSON or not UTF-8.
    """
    hostile = hostile_json()

    def value_for(field: str) -> Any:
        good = json.loads(valid.get(field, "null"))
        if not isinstance(good, str):
            return hostile
        spliced = st.builds(
            lambda c, i: json.dumps(good[:i] + c + good[i:]),
            st.sampled_from(HOSTILE_CHARACTERS) | st.characters(exclude_categories=()),
            st.integers(0, len(good)),
        )
        return spliced | hostile

    def render(members: dict[str, str]) -> bytes:
        return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members.items()) + "}").encode()

    one_bad = st.sampled_from(sorted(valid)).flatmap(
        lambda f: value_for(f).map(lambda v: {**valid, f: v})
    )
    any_bad = st.fixed_dictionaries(
        {}, optional={f: value_for(f) for f in [*valid, "$where", "_id"]}
    )
    # Not JSON at all, or not UTF-8 (a raw encoded surrogate, a stray byte).
    broken = st.sampled_from([b"", b"{", b"nul", b'{"a":1}}', b"\xff\xfe", b'{"x":"\xed\xa0\x80"}'])
    return st.one_of(
        one_bad.map(render),
        one_bad.map(render),
        any_bad.map(render),
        hostile.map(str.encode),
        broken,
    )
