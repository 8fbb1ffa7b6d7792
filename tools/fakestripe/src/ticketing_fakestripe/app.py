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

Here the app is put together; a module per resource holds its routes and what they do
(`payment_intents`, `refunds`, the card charges they make in `charges`, the test controls in
`controls`), over the shared parts: `state` (the lock, idempotency keys, injected failures),
`ledger`, `calls` (a POST run against the state), `gate` (injected failures, the API key),
`errors`, `wire` (forms in, JSON out), `amounts` and `cards`.
"""

from __future__ import annotations

from fastapi import FastAPI

from ticketing_fakestripe import controls, payment_intents, refunds
from ticketing_fakestripe.gate import gate
from ticketing_fakestripe.state import FakeState


def create_app(state: FakeState | None = None) -> FastAPI:
    """The fake as an ASGI app; pass a `FakeState` to inspect or steer it from outside."""
    app = FastAPI(title="fake-stripe", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = state or FakeState()
    app.middleware("http")(gate)
    for router in (controls.router, payment_intents.router, refunds.router):
        app.include_router(router)
    return app
