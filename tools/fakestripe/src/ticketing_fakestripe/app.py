"""The fake's HTTP API: Stripe's PaymentIntents and Refunds, plus test controls.

Only what the payments service uses, answered the way Stripe answers it, so the official SDK
talks to this app unchanged (`base_addresses={"api": ...}`) and raises the same exceptions:
- PaymentIntents: create (confirming it with `confirm=true`), confirm, capture, cancel,
  retrieve, list. Without a card a new PaymentIntent is `requires_payment_method`, with one
  `requires_confirmation`; confirming it charges the card: `succeeded`, or a 402 `card_error`
  that leaves it `requires_payment_method` for another card. A PaymentIntent that succeeded
  cannot be confirmed again (400 `payment_intent_unexpected_state`);
- manual capture (`capture_method=manual`): confirming only authorizes the card, and the
  PaymentIntent waits in `requires_capture` (`amount_capturable` set, nothing received).
  Capturing it (all, or `amount_to_capture`) makes it `succeeded`; only a `requires_capture`
  PaymentIntent can be captured (400 `payment_intent_unexpected_state` otherwise, e.g. when it
  was captured already, unless the same idempotency key replays the first capture);
- cancel: from `requires_payment_method`, `requires_confirmation`, `requires_action` or
  `requires_capture` (which voids the authorization: its charge is released, nothing moves),
  the PaymentIntent becomes `canceled` and can never be confirmed or captured; a `succeeded`
  or `canceled` one cannot be canceled (400 `payment_intent_unexpected_state`);
- the documented test cards: `pm_card_visa` / `tok_visa` succeed; `pm_card_chargeDeclined`,
  `pm_card_visa_chargeDeclined`, `tok_chargeDeclined` are declined;
- Refunds: create (by `payment_intent` or `charge`, whole or partial), retrieve, list; a charge
  cannot be refunded beyond its amount (400 `charge_already_refunded` once it is all refunded);
- idempotency keys, on every POST: a repeat with the same key, endpoint and body replays the
  first response (a 402 decline included) with `Idempotent-Replayed: true`; with another
  endpoint or other parameters it is a 400 `idempotency_error`; requests refused before they
  execute (400, 404) are not saved, as on Stripe, so a corrected request may reuse its key;
- the API version the SDK sends (`Stripe-Version`): from 2026-09-30, `payment_method_types`
  is refused, as Stripe does;
- `Authorization: Bearer sk_test_...` required, as any test-mode key would be.

Test controls (not Stripe's API):
- `POST /_fake/fail {"count": N, "status": 500}` fails the next N `/v1` requests before they do
  anything, like an outage. With `"after_commit": true` each of them is carried out (and its
  idempotent result saved) and only its response is lost: Stripe did it, the caller cannot know.
  `"path": "/confirm"` limits the failures to requests whose path contains that text.
- `POST /_fake/reset` forgets everything.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
# From this API version on (stripe-python 16 pins 2026-10-28), `payment_method_types` is no
# longer writable: Stripe answers 400 `payment_method_types_no_longer_supported`.
TYPES_REMOVED_IN = "2026-09-30"
# The statuses from which Stripe lets a PaymentIntent be confirmed, and canceled.
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = (*CONFIRMABLE, "requires_capture")
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")

IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than '{key}' if you meant to execute a different request."
)
IDEMPOTENCY_OTHER_ENDPOINT = (
    "Keys for idempotent requests can only be used for the same endpoint they were first used "
    "for ('{first}' vs '{this}'). Try using a key other than '{key}' if you meant to execute a "
    "different request."
)
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


@dataclass(frozen=True)
class Injection:
    """An injected failure: its status, and whether the request is carried out first."""

    status: int
    after_commit: bool


@dataclass(frozen=True)
class _Card:
    declines: bool


@dataclass
class _Ledger:
    """Stripe's side of things; every dict in insertion (= creation) order."""

    intents: dict[str, Json] = field(default_factory=dict)
    charges: dict[str, Json] = field(default_factory=dict)
    refunds: dict[str, Json] = field(default_factory=dict)
    # The card given to a PaymentIntent not confirmed yet, which a bare confirm then charges.
    cards: dict[str, _Card] = field(default_factory=dict)
    # PaymentIntents open to the Dashboard's payment methods, which may redirect.
    redirectable: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Saved:
    endpoint: str
    body_hash: str
    status: int
    body: Json


class FakeState:
    """Everything the fake remembers.

    The server runs on its own thread (`FakeStripeServer`) while tests read this object from
    theirs, so every access goes through the lock and readers get copies.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledger = _Ledger()
        self._saved: dict[str, _Saved] = {}  # idempotency key -> the first response
        self._fail_count = 0
        self._fail = Injection(status=500, after_commit=False)
        self._fail_path: str | None = None
        self._requests = 0

    def reset(self) -> None:
        with self._lock:
            self._ledger = _Ledger()
            self._saved.clear()
            self._fail_count = 0
            self._fail = Injection(status=500, after_commit=False)
            self._fail_path = None
            self._requests = 0

    def fail_next(
        self, count: int, status: int = 500, *, after_commit: bool = False, path: str | None = None
    ) -> None:
        """Make the next `count` /v1 requests (whose path contains `path`, if given) fail.

        With `after_commit` they are carried out first and only their responses are lost.
        """
        with self._lock:
            self._fail_count = count
            self._fail = Injection(status=status, after_commit=after_commit)
            self._fail_path = path

    def intents(self) -> list[Json]:
        """Every PaymentIntent created, oldest first (copies)."""
        with self._lock:
            return [dict(pi) for pi in self._ledger.intents.values()]

    def charges(self) -> list[Json]:
        """Every attempt to charge a card, declined ones included, oldest first (copies)."""
        with self._lock:
            return [dict(ch) for ch in self._ledger.charges.values()]

    def refunds(self) -> list[Json]:
        """Every refund, oldest first (copies)."""
        with self._lock:
            return [dict(re) for re in self._ledger.refunds.values()]

    @property
    def requests(self) -> int:
        """How many /v1 requests arrived, injected failures included."""
        with self._lock:
            return self._requests

    def admit(self, path: str) -> Injection | None:
        """Count a /v1 request; the failure to inject into it, or None to serve it."""
        with self._lock:
            self._requests += 1
            if self._fail_count > 0 and (self._fail_path is None or self._fail_path in path):
                self._fail_count -= 1
                return self._fail
            return None

    def execute(
        self,
        operation: Callable[[_Ledger, Json], tuple[int, Json]],
        raw: bytes,
        *,
        endpoint: str,
        key: str | None,
    ) -> tuple[int, Json, bool]:
        """Run a POST, or replay it for its idempotency key: (status, body, replayed)."""
        body_hash = hashlib.sha256(raw).hexdigest()
        with self._lock:
            saved = self._saved.get(key) if key is not None else None
            if saved is not None:
                if saved.endpoint != endpoint:
                    message = IDEMPOTENCY_OTHER_ENDPOINT.format(
                        first=saved.endpoint, this=endpoint, key=key
                    )
                    return 400, _error("idempotency_error", message), False
                if saved.body_hash != body_hash:
                    return (
                        400,
                        _error("idempotency_error", IDEMPOTENCY_MISMATCH.format(key=key)),
                        False,
                    )
                return saved.status, saved.body, True
            try:
                status, body = operation(self._ledger, decode_form(raw))
            except _Rejected as rejected:
                status, body = rejected.status, rejected.body
            # Stripe saves a result only once the request began executing: a request refused
            # up front (400, 404) is not saved; a decline (402) is, and is replayed.
            if key is not None and status not in (400, 404):
                self._saved[key] = _Saved(endpoint, body_hash, status, body)
            return status, body, False

    def get(self, intent_id: str) -> Json | None:
        with self._lock:
            intent = self._ledger.intents.get(intent_id)
            return dict(intent) if intent is not None else None

    def get_refund(self, refund_id: str) -> Json | None:
        with self._lock:
            refund = self._ledger.refunds.get(refund_id)
            return dict(refund) if refund is not None else None


class FailureInjection(BaseModel):
    count: int = 1
    status: int = 500
    after_commit: bool = False
    path: str | None = None


def create_app(state: FakeState | None = None) -> FastAPI:
    """The fake as an ASGI app; pass a `FakeState` to inspect or steer it from outside."""
    fake = state or FakeState()
    app = FastAPI(title="fake-stripe", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = fake

    @app.middleware("http")
    async def gate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not request.url.path.startswith("/v1/"):
            return await call_next(request)
        injected = fake.admit(request.url.path)
        if injected is not None and not injected.after_commit:
            return _response(injected.status, _error("api_error", "Injected failure"))
        if not request.headers.get("authorization", "").startswith("Bearer sk_test_"):
            return _response(401, _error("invalid_request_error", "Invalid API Key provided"))
        response = await call_next(request)
        if injected is None:
            return response
        # Carried out, and its answer lost on the way back.
        body = getattr(response, "body_iterator", None)
        if body is not None:
            async for _ in body:
                pass
        return _response(injected.status, _error("api_error", "Injected failure"))

    @app.post("/_fake/fail")
    async def fail(body: FailureInjection) -> Json:
        """Fail the next `count` /v1 requests with `status`."""
        fake.fail_next(body.count, body.status, after_commit=body.after_commit, path=body.path)
        return {"ok": True}

    @app.post("/_fake/reset")
    async def reset() -> Json:
        """Forget every PaymentIntent, refund, idempotency key and injected failure."""
        fake.reset()
        return {"ok": True}

    async def execute(
        request: Request, operation: Callable[[_Ledger, Json], tuple[int, Json]]
    ) -> Response:
        version = request.headers.get("stripe-version", "")

        def versioned(ledger: _Ledger, params: Json) -> tuple[int, Json]:
            if "payment_method_types" in params and version >= TYPES_REMOVED_IN:
                raise _Rejected(
                    "The `payment_method_types` parameter is not supported in API version "
                    f"{version}. Use `automatic_payment_methods` or "
                    "`allowed_payment_method_types` instead.",
                    "payment_method_types",
                    code="payment_method_types_no_longer_supported",
                )
            return operation(ledger, params)

        status, body, replayed = fake.execute(
            versioned,
            await request.body(),
            endpoint=request.url.path,
            key=request.headers.get("idempotency-key"),
        )
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return _response(status, body, headers=headers)

    @app.post("/v1/payment_intents")
    async def create_payment_intent(request: Request) -> Response:
        """Create a PaymentIntent, confirming it when `confirm=true`."""
        return await execute(request, _create_intent)

    @app.post("/v1/payment_intents/{intent_id}/confirm")
    async def confirm_payment_intent(intent_id: str, request: Request) -> Response:
        """Confirm a PaymentIntent: charge its card, or the one given now."""
        return await execute(request, lambda ledger, params: _confirm(ledger, intent_id, params))

    @app.post("/v1/payment_intents/{intent_id}/capture")
    async def capture_payment_intent(intent_id: str, request: Request) -> Response:
        """Capture an authorized (`requires_capture`) PaymentIntent: the money moves."""
        return await execute(request, lambda ledger, params: _capture(ledger, intent_id, params))

    @app.post("/v1/payment_intents/{intent_id}/cancel")
    async def cancel_payment_intent(intent_id: str, request: Request) -> Response:
        """Cancel a PaymentIntent not yet succeeded; an authorization is voided."""
        return await execute(request, lambda ledger, params: _cancel(ledger, intent_id, params))

    @app.get("/v1/payment_intents/{intent_id}")
    async def retrieve_payment_intent(intent_id: str) -> Response:
        """One PaymentIntent."""
        return _found(fake.get(intent_id), "payment_intent", intent_id, param="intent")

    @app.get("/v1/payment_intents")
    async def list_payment_intents(limit: int = 10, starting_after: str | None = None) -> Json:
        """PaymentIntents, newest first, paged like Stripe's lists."""
        return _page("/v1/payment_intents", fake.intents(), limit, starting_after)

    @app.post("/v1/refunds")
    async def create_refund(request: Request) -> Response:
        """Refund a PaymentIntent's (or a charge's) money, all of what is left or `amount`."""
        return await execute(request, _create_refund)

    @app.get("/v1/refunds/{refund_id}")
    async def retrieve_refund(refund_id: str) -> Response:
        """One refund."""
        return _found(fake.get_refund(refund_id), "refund", refund_id, param="refund")

    @app.get("/v1/refunds")
    async def list_refunds(
        limit: int = 10, starting_after: str | None = None, payment_intent: str | None = None
    ) -> Json:
        """Refunds, newest first, of one PaymentIntent if given, paged like Stripe's lists."""
        refunds = fake.refunds()
        if payment_intent is not None:
            refunds = [r for r in refunds if r["payment_intent"] == payment_intent]
        return _page("/v1/refunds", refunds, limit, starting_after)

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


def _page(url: str, items: list[Json], limit: int, starting_after: str | None) -> Json:
    items = list(reversed(items))
    if starting_after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(starting_after) + 1 :] if starting_after in ids else []
    return {"object": "list", "url": url, "data": items[:limit], "has_more": len(items) > limit}


def _error(kind: str, message: str, **extra: Any) -> Json:
    return {"error": {"type": kind, "message": message, **extra}}


def _no_such(kind: str, object_id: str, *, param: str) -> Json:
    message = f"No such {kind}: '{object_id}'"
    return _error("invalid_request_error", message, code="resource_missing", param=param)


def _found(obj: Json | None, kind: str, object_id: str, *, param: str) -> JSONResponse:
    """The object, or Stripe's 404 for an unknown id."""
    if obj is None:
        return _response(404, _no_such(kind, object_id, param=param))
    return _response(200, obj)


def _response(status: int, body: Json, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


class _Rejected(Exception):
    """A request Stripe refuses before doing anything: 400 unless told otherwise."""

    def __init__(self, message: str, param: str | None, *, status: int = 400, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body = _error("invalid_request_error", message, param=param, **extra)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _card_of(params: Json) -> _Card | None:
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
) -> _Card:
    """The card a test payment method or token stands for; Stripe's 404 for any other."""
    if name in succeeding:
        return _Card(declines=False)
    if name in declined:
        return _Card(declines=True)
    raise _Rejected(f"No such {what}: '{name}'", param, code="resource_missing")


def _integer(raw: object, name: str, message: str) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise _Rejected(message, name) from None


def _amount(params: Json) -> int:
    return _integer(params.get("amount", ""), "amount", "Missing required param: amount.")


def _part_of(params: Json, name: str, *, left: int, too_large: Callable[[int], str]) -> int:
    """The optional amount `name` (cents) out of `left`, all of it when absent."""
    raw = params.get(name)
    if raw is None:
        return left
    amount = _integer(raw, name, f"Invalid integer: {raw}")
    if amount <= 0:
        raise _Rejected("Invalid positive integer", name)
    if amount > left:
        raise _Rejected(too_large(amount), name, code="amount_too_large")
    return amount


def _create_intent(ledger: _Ledger, params: Json) -> tuple[int, Json]:
    amount = _amount(params)
    if amount < MINIMUM_AMOUNT:
        raise _Rejected("Amount must be at least $0.50 usd", "amount")
    currency = str(params.get("currency") or "").lower()
    if not currency:
        raise _Rejected("Missing required param: currency.", "currency")
    confirm = params.get("confirm") == "true"
    capture_method = params.get("capture_method") or "automatic"
    if capture_method not in CAPTURE_METHODS:
        raise _Rejected(
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
        raise _Rejected(RETURN_URL_REQUIRED, None)
    card = _card_of(params)

    intent_id = _new_id("pi")
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
        "payment_method": _new_id("pm") if card is not None else None,
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
        return _charge(ledger, intent, card)
    return 200, dict(intent)


def _intent(ledger: _Ledger, intent_id: str) -> Json:
    intent = ledger.intents.get(intent_id)
    if intent is None:
        raise _Rejected(
            f"No such payment_intent: '{intent_id}'", "intent", status=404, code="resource_missing"
        )
    return intent


def _unexpected_state(message: str, intent: Json) -> _Rejected:
    # Stripe sends the PaymentIntent as it stands with this error: the SDK exposes it as
    # `error.payment_intent`, which is how a caller learns what happened meanwhile.
    return _Rejected(
        message, None, code="payment_intent_unexpected_state", payment_intent=dict(intent)
    )


def _confirm(ledger: _Ledger, intent_id: str, params: Json) -> tuple[int, Json]:
    intent = _intent(ledger, intent_id)
    if intent["status"] not in CONFIRMABLE:
        raise _unexpected_state(
            ALREADY_SUCCEEDED
            if intent["status"] == "succeeded"
            else NOT_CONFIRMABLE.format(status=intent["status"]),
            intent,
        )
    if intent_id in ledger.redirectable and not params.get("return_url"):
        raise _Rejected(RETURN_URL_REQUIRED, None)
    card = _card_of(params) or ledger.cards.get(intent_id)
    if card is None:
        raise _unexpected_state(MISSING_PAYMENT_METHOD, intent)
    intent["payment_method"] = _new_id("pm")
    return _charge(ledger, intent, card)


def _charge(ledger: _Ledger, intent: Json, card: _Card) -> tuple[int, Json]:
    """Charge the card for the PaymentIntent (both already valid): `succeeded`, or with manual
    capture only authorized (`requires_capture`), or declined."""
    ledger.cards.pop(intent["id"], None)  # used: a retry needs a card again
    manual = intent["capture_method"] == "manual"
    captured = not card.declines and not manual
    charge: Json = {
        "id": _new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        # As on Stripe, an authorized charge has succeeded (the card said yes) and is not
        # captured: no money moved until the PaymentIntent is captured.
        "amount_captured": intent["amount"] if captured else 0,
        "captured": captured,
        "amount_refunded": 0,
        "currency": intent["currency"],
        "payment_intent": intent["id"],
        "created": int(time.time()),
        "livemode": False,
        "refunded": False,
        "paid": not card.declines,
        "status": "failed" if card.declines else "succeeded",
        "failure_code": "card_declined" if card.declines else None,
    }
    ledger.charges[charge["id"]] = charge
    intent["latest_charge"] = charge["id"]
    if card.declines:
        error: Json = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": DECLINE_MESSAGE,
            "charge": charge["id"],
        }
        intent.update(
            status="requires_payment_method", payment_method=None, last_payment_error=error
        )
        return 402, {"error": {**error, "payment_intent": dict(intent)}}
    if manual:
        intent.update(
            status="requires_capture", amount_capturable=intent["amount"], last_payment_error=None
        )
    else:
        intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
    return 200, dict(intent)


def _capture(ledger: _Ledger, intent_id: str, params: Json) -> tuple[int, Json]:
    intent = _intent(ledger, intent_id)
    if intent["status"] != "requires_capture":
        raise _unexpected_state(NOT_CAPTURABLE.format(status=intent["status"]), intent)
    capturable = intent["amount_capturable"]
    amount = _part_of(
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


def _cancel(ledger: _Ledger, intent_id: str, params: Json) -> tuple[int, Json]:
    intent = _intent(ledger, intent_id)
    reason = params.get("cancellation_reason") or None
    if reason is not None and reason not in CANCELLATION_REASONS:
        raise _Rejected(
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


def _create_refund(ledger: _Ledger, params: Json) -> tuple[int, Json]:
    intent_id = params.get("payment_intent")
    charge_id = params.get("charge")
    if intent_id:
        intent = ledger.intents.get(intent_id)
        if intent is None:
            raise _Rejected(
                f"No such payment_intent: '{intent_id}'", "payment_intent", code="resource_missing"
            )
        if intent["status"] != "succeeded":
            raise _Rejected(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                "payment_intent",
            )
        charge_id = intent["latest_charge"]
    elif not charge_id:
        raise _Rejected(
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            None,
        )
    charge = ledger.charges.get(charge_id)
    if charge is None:
        raise _Rejected(f"No such charge: '{charge_id}'", "charge", code="resource_missing")
    if charge["status"] != "succeeded":
        raise _Rejected(f"Charge {charge_id} has no successful payment to refund.", "charge")
    if charge["refunded"]:
        raise _Rejected(
            f"Charge {charge_id} has already been refunded.",
            None,
            code="charge_already_refunded",
        )
    if not charge["captured"]:
        # Only what was captured can go back; an authorization is released by canceling its
        # PaymentIntent (the payments service's void), which the fake models alone.
        raise _Rejected(
            f"Charge {charge_id} has not been captured: cancel its PaymentIntent instead.",
            "charge",
        )
    left = charge["amount_captured"] - charge["amount_refunded"]
    amount = _part_of(
        params,
        "amount",
        left=left,
        too_large=lambda amount: (
            f"Refund amount (${amount / 100:.2f}) is greater than unrefunded amount on charge "
            f"(${left / 100:.2f})"
        ),
    )
    refund: Json = {
        "id": _new_id("re"),
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
