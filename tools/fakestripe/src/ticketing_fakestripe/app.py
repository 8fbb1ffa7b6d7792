"""The fake's HTTP API: Stripe's PaymentIntents (create, retrieve, list) plus test controls.

Only what the payments service uses, answered the way Stripe answers it, so the official SDK
talks to this app unchanged (`base_addresses={"api": ...}`) and raises the same exceptions:
- the documented test cards: `pm_card_visa` / `tok_visa` succeed; `pm_card_chargeDeclined`,
  `pm_card_visa_chargeDeclined`, `tok_chargeDeclined` are declined with a 402 `card_error`;
- idempotency keys: a repeat with the same key and body replays the first response (a 402
  decline included), with other parameters it is a 400 `idempotency_error`; validation failures
  are not saved, as on Stripe, so a corrected request may reuse its key;
- `Authorization: Bearer sk_test_...` required, as any test-mode key would be.

Test controls (not Stripe's API): `POST /_fake/fail {"count": N, "status": 500}` fails the next N
`/v1` requests before they do anything, like an outage; `POST /_fake/reset` forgets everything.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

Json = dict[str, Any]

# Stripe's documented test payment methods and card tokens that the fake knows.
SUCCEEDING_PAYMENT_METHODS = frozenset({"pm_card_visa", "pm_card_mastercard"})
SUCCEEDING_TOKENS = frozenset({"tok_visa", "tok_mastercard"})
DECLINED_PAYMENT_METHODS = frozenset({"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"})
DECLINED_TOKENS = frozenset({"tok_chargeDeclined", "tok_visa_chargeDeclined"})
DECLINE_MESSAGE = "Your card was declined."
MINIMUM_AMOUNT = 50  # Stripe's minimum charge in USD cents

IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than '{key}' if you meant to execute a different request."
)
RETURN_URL_REQUIRED = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. "
    "Because some of these payment methods might redirect your customer off of your page, you "
    "must provide a `return_url`. If you don't want to accept redirect-based payment methods, "
    "set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and "
    "Payment Intents."
)


class FakeState:
    """Everything the fake remembers.

    The server runs on its own thread (`FakeStripeServer`) while tests read this object from
    theirs, so every access goes through the lock and readers get copies.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._intents: dict[str, Json] = {}  # insertion order = creation order
        self._saved: dict[str, tuple[str, int, Json]] = {}  # key -> (body hash, status, body)
        self._fail_count = 0
        self._fail_status = 500
        self._requests = 0

    def reset(self) -> None:
        with self._lock:
            self._intents.clear()
            self._saved.clear()
            self._fail_count = 0
            self._fail_status = 500
            self._requests = 0

    def fail_next(self, count: int, status: int = 500) -> None:
        """Make the next `count` /v1 requests fail with `status` (an outage, as the SDK sees it)."""
        with self._lock:
            self._fail_count = count
            self._fail_status = status

    def intents(self) -> list[Json]:
        """Every PaymentIntent created, oldest first (copies)."""
        with self._lock:
            return [dict(pi) for pi in self._intents.values()]

    @property
    def requests(self) -> int:
        """How many /v1 requests arrived, injected failures included."""
        with self._lock:
            return self._requests

    def admit(self) -> int | None:
        """Count a /v1 request; the status to fail it with, or None to serve it."""
        with self._lock:
            self._requests += 1
            if self._fail_count > 0:
                self._fail_count -= 1
                return self._fail_status
            return None

    def create(self, params: Json, *, key: str | None, body_hash: str) -> tuple[int, Json, bool]:
        """Create (or replay) a PaymentIntent: (status, body, replayed)."""
        with self._lock:
            if key is not None and key in self._saved:
                saved_hash, status, body = self._saved[key]
                if saved_hash != body_hash:
                    return (
                        400,
                        _error("idempotency_error", IDEMPOTENCY_MISMATCH.format(key=key)),
                        False,
                    )
                return status, body, True
            status, body = _create_intent(self._intents, params)
            # Stripe saves a result only once the request began executing: a validation failure
            # is not saved, a decline (402) is and is replayed.
            if key is not None and status != 400:
                self._saved[key] = (body_hash, status, body)
            return status, body, False

    def get(self, intent_id: str) -> Json | None:
        with self._lock:
            intent = self._intents.get(intent_id)
            return dict(intent) if intent is not None else None


class FailureInjection(BaseModel):
    count: int = 1
    status: int = 500


def create_app(state: FakeState | None = None) -> FastAPI:
    """The fake as an ASGI app; pass a `FakeState` to inspect or steer it from outside."""
    fake = state or FakeState()
    app = FastAPI(title="fake-stripe", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.middleware("http")
    async def gate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/v1/"):
            injected = fake.admit()
            if injected is not None:
                return _response(injected, _error("api_error", "Injected failure"))
            if not request.headers.get("authorization", "").startswith("Bearer sk_test_"):
                return _response(401, _error("invalid_request_error", "Invalid API Key provided"))
        return await call_next(request)

    @app.post("/_fake/fail")
    async def fail(body: FailureInjection) -> Json:
        """Fail the next `count` /v1 requests with `status`."""
        fake.fail_next(body.count, body.status)
        return {"ok": True}

    @app.post("/_fake/reset")
    async def reset() -> Json:
        """Forget every PaymentIntent, idempotency key and injected failure."""
        fake.reset()
        return {"ok": True}

    @app.post("/v1/payment_intents")
    async def create_payment_intent(request: Request) -> Response:
        """Create a PaymentIntent, confirming it when `confirm=true`."""
        raw = await request.body()
        status, body, replayed = fake.create(
            decode_form(raw),
            key=request.headers.get("idempotency-key"),
            body_hash=hashlib.sha256(raw).hexdigest(),
        )
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return _response(status, body, headers=headers)

    @app.get("/v1/payment_intents/{intent_id}")
    async def retrieve_payment_intent(intent_id: str) -> Response:
        """One PaymentIntent."""
        intent = fake.get(intent_id)
        if intent is None:
            message = f"No such payment_intent: '{intent_id}'"
            body = _error("invalid_request_error", message, code="resource_missing", param="intent")
            return _response(404, body)
        return _response(200, intent)

    @app.get("/v1/payment_intents")
    async def list_payment_intents(limit: int = 10, starting_after: str | None = None) -> Json:
        """PaymentIntents, newest first, paged like Stripe's lists."""
        items = list(reversed(fake.intents()))
        if starting_after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(starting_after) + 1 :] if starting_after in ids else []
        return {
            "object": "list",
            "url": "/v1/payment_intents",
            "data": items[:limit],
            "has_more": len(items) > limit,
        }

    return app


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


def _error(kind: str, message: str, **extra: Any) -> Json:
    return {"error": {"type": kind, "message": message, **extra}}


def _response(status: int, body: Json, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


class _Rejected(Exception):
    """A request Stripe would refuse with a 400 before creating anything."""

    def __init__(self, message: str, param: str | None, **extra: Any) -> None:
        super().__init__(message)
        self.body = _error("invalid_request_error", message, param=param, **extra)


@dataclass(frozen=True)
class _Card:
    declines: bool


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _card_of(params: Json) -> _Card | None:
    """The test card a request pays with, or None when it names none."""
    payment_method = params.get("payment_method")
    data = params.get("payment_method_data")
    if payment_method:
        if payment_method in SUCCEEDING_PAYMENT_METHODS:
            return _Card(declines=False)
        if payment_method in DECLINED_PAYMENT_METHODS:
            return _Card(declines=True)
        raise _Rejected(
            f"No such PaymentMethod: '{payment_method}'", "payment_method", code="resource_missing"
        )
    if isinstance(data, dict):
        card = data.get("card")
        token = card.get("token") if data.get("type") == "card" and isinstance(card, dict) else None
        if token in SUCCEEDING_TOKENS:
            return _Card(declines=False)
        if token in DECLINED_TOKENS:
            return _Card(declines=True)
        raise _Rejected(
            f"No such token: '{token}'", "payment_method_data[card][token]", code="resource_missing"
        )
    return None


def _create_intent(intents: dict[str, Json], params: Json) -> tuple[int, Json]:
    try:
        return _create_valid_intent(intents, params)
    except _Rejected as rejected:
        return 400, rejected.body


def _create_valid_intent(intents: dict[str, Json], params: Json) -> tuple[int, Json]:
    try:
        amount = int(params.get("amount", ""))
    except (TypeError, ValueError):
        raise _Rejected("Missing required param: amount.", "amount") from None
    if amount < MINIMUM_AMOUNT:
        raise _Rejected("Amount must be at least $0.50 usd", "amount")
    currency = str(params.get("currency") or "").lower()
    if not currency:
        raise _Rejected("Missing required param: currency.", "currency")
    confirm = params.get("confirm") == "true"
    automatic = params.get("automatic_payment_methods") or {}
    types = params.get("payment_method_types")
    no_redirects = (
        automatic.get("enabled") == "true" and automatic.get("allow_redirects") == "never"
    )
    # Stripe's default (dashboard payment methods) may redirect, so confirming needs a way back.
    if confirm and not types and not no_redirects and not params.get("return_url"):
        raise _Rejected(RETURN_URL_REQUIRED, None)
    card = _card_of(params)

    intent_id = _new_id("pi")
    intent: Json = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "currency": currency,
        "created": int(time.time()),
        "livemode": False,
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
        "confirmation_method": "automatic",
        "capture_method": "automatic",
        "description": params.get("description"),
        "metadata": params.get("metadata") or {},
        "payment_method": _new_id("pm") if card is not None else None,
        "payment_method_types": types or ["card"],
        "latest_charge": None,
        "last_payment_error": None,
        "status": "requires_confirmation" if card is not None else "requires_payment_method",
    }
    if confirm and card is not None:
        charge_id = _new_id("ch")
        intent["latest_charge"] = charge_id
        if card.declines:
            error: Json = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": DECLINE_MESSAGE,
                "charge": charge_id,
            }
            intent.update(
                status="requires_payment_method", payment_method=None, last_payment_error=error
            )
            intents[intent_id] = intent
            return 402, {"error": {**error, "payment_intent": dict(intent)}}
        intent.update(status="succeeded", amount_received=amount)
    intents[intent_id] = intent
    return 200, dict(intent)
