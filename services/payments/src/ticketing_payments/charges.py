"""Money through Stripe in two steps: authorize the card, then capture or void: one
PaymentIntent per order.

Paying authorizes only (`capture_method=manual`): the card is held for the price and the
PaymentIntent waits in `requires_capture`. Orders alone then decides the order's fate, and
payments settles the authorization accordingly (see `settle`): it captures it when the order is
complete and voids it when the order is cancelled. So a cancelled order never had money taken,
and a paid order cannot be cancelled (SPEC flaw 4).

The order's PaymentIntent is created once, unconfirmed, under an idempotency key derived from the
order alone, so every attempt to pay the order finds the same one, whatever card it brings.
That is what makes an unknown outcome safe: when Stripe authorized the card but the answer was
lost (a timeout, a 5xx after the authorization, our own write failing), the buyer's next attempt
comes with a new single-use token, finds the PaymentIntent `requires_capture`, and records it
instead of authorizing again. A decline leaves it `requires_payment_method`, ready to be
confirmed with another card. Capturing and voiding have one idempotency key per order each, so
a redelivered event replays Stripe's first answer instead of acting twice.

The official SDK, async end to end (`*_async` over its HTTPX client), so a slow Stripe never
blocks the event loop. One client per process: it holds the connection pool.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import stripe
from stripe.params import PaymentIntentConfirmParams

from ticketing_common.bus import Dependency, DependencyUnavailable
from ticketing_common.errors import BadRequestError, UpstreamError
from ticketing_common.telemetry.stripe import observe_stripe
from ticketing_payments.settings import Settings

log = logging.getLogger("ticketing.payments.charges")

CURRENCY = "usd"
PROVIDER_UNAVAILABLE = "Payment provider unavailable, please try again"
SUCCEEDED = "succeeded"  # captured: the money moved
REQUIRES_CAPTURE = "requires_capture"  # authorized: the card is held, nothing moved yet
PROCESSING = "processing"
CANCELED = "canceled"
# What a confirmed PaymentIntent of ours can be: authorized, or (once orders completed the
# order) captured.
AUTHORIZED = (REQUIRES_CAPTURE, SUCCEEDED)
# Stripe's reason for a voided authorization: the buyer's order went away before completing.
VOID_REASON = "abandoned"


class HTTPXClient(stripe.HTTPXClient):
    """The SDK's async HTTPX client, sending its encoded form body as `content=`.

    The SDK passes the body as `data=<str>`, which httpx deprecates with a DeprecationWarning on
    every request (an error under our test settings). Should the SDK rename this hook, the
    override is simply unused and the warning comes back; nothing breaks.
    """

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), (str, bytes)):
            kwargs["content"] = kwargs.pop("data")
        return [args, kwargs]

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> Any:
        """Each request to Stripe in a span, and counted by operation and outcome."""
        with observe_stripe("payments", method, url) as call:
            answer = await super().request_async(method, url, headers, post_data)
            call.status = answer[1]
        return answer


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent as the payments service needs it."""

    id: str
    status: str


class StripeCharger:
    """Authorizes, captures and voids card payments through Stripe; built once per process (it
    owns the pool)."""

    def __init__(
        self, settings: Settings, *, http_client: stripe.HTTPXClient | None = None
    ) -> None:
        # With telemetry on, the SDK's first request writes an id file under ~/.config and probes
        # the platform, synchronously, on the event loop; and Stripe needs no machine details.
        stripe.enable_telemetry = False
        # HTTPX is the SDK's async-capable client: requests and retry back-off sleeps both await.
        self.http_client = http_client or HTTPXClient(timeout=settings.stripe_timeout_seconds)
        base = settings.stripe_api_base
        self.client = stripe.StripeClient(
            settings.stripe_secret,
            # Unset, the SDK talks to api.stripe.com; set, to the fake (the settings make sure a
            # live key never goes anywhere but Stripe).
            base_addresses={"api": base} if base else None,
            max_network_retries=settings.stripe_max_network_retries,
            http_client=self.http_client,
        )

    async def close(self) -> None:
        await self.http_client.close_async()  # type: ignore[no-untyped-call]  # stripe: untyped

    # --- paying (authorizing): errors become what the buyer is shown ---------------------------

    async def order_intent(self, *, order_id: str, amount_cents: int) -> Intent:
        """The order's one PaymentIntent, created unconfirmed on first use, as it is now."""
        context = {"order_id": order_id, "amount_cents": amount_cents}
        with _for_the_buyer(context):
            intent = await self.client.v1.payment_intents.create_async(
                # The same parameters every time: the key replays them, other ones are refused.
                params={
                    "amount": amount_cents,
                    "currency": CURRENCY,
                    # Confirming authorizes only: the money moves when orders completes the
                    # order (`capture`), and the hold is released if it cancels it (`void`).
                    "capture_method": "manual",
                    # No redirecting payment methods, so confirming here needs no return_url.
                    # (Not `payment_method_types: ["card"]`: Stripe refuses it from API version
                    # 2026-09-30, and the SDK pins a later one.)
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "metadata": {"orderId": order_id},
                },
                options={"idempotency_key": intent_key(order_id=order_id)},
            )
            if _replayed(intent):
                # A replay answers as the first creation did (unconfirmed): an earlier attempt
                # may have confirmed it since, so ask for it as it is now.
                intent = await self.client.v1.payment_intents.retrieve_async(intent.id)
        return Intent(id=intent.id, status=intent.status)

    async def confirm(self, intent: Intent, *, order_id: str, token: str) -> None:
        """Authorize the card for the PaymentIntent; returns once it is authorized.

        Raises the error to show the buyer otherwise: BadRequestError (declined, refused, needs
        authentication) or UpstreamError (Stripe unreachable or failing: outcome unknown).
        """
        context = {"order_id": order_id, "payment_intent": intent.id}
        if intent.status in (PROCESSING, CANCELED):
            # Not confirmable: Stripe would refuse, and the buyer's answer is the same.
            raise not_payable(intent.status)
        with _for_the_buyer(context):
            try:
                confirmed = await self.client.v1.payment_intents.confirm_async(
                    intent.id,
                    # The SDK's types leave out `payment_method_data[card]` (raw card numbers
                    # need PCI compliance), but the API takes a card token there.
                    params=cast(PaymentIntentConfirmParams, _card(token)),
                    options={"idempotency_key": confirm_key(order_id=order_id, token=token)},
                )
                status = confirmed.status
            except stripe.InvalidRequestError as exc:
                # Confirmed meanwhile by an attempt that outlived its lease: Stripe tells us how
                # it stands (and never authorizes a confirmed PaymentIntent twice).
                status = _status_in(exc)
        if status in AUTHORIZED:
            log.info("authorized", extra=context)
            return
        # E.g. requires_action (3-D Secure): this API has no step to complete it, so no sale.
        log.info("payment not completed", extra={**context, "status": status})
        raise not_payable(status)

    # --- settling, once orders decided: Stripe being down is DependencyUnavailable ------------

    async def capture(self, *, order_id: str, intent_id: str) -> str:
        """Capture the order's authorization in full; the PaymentIntent's status afterwards.

        `succeeded` once captured, by this call or an earlier one (however often it is asked:
        one key per order). Any other status is one Stripe refused to capture from.
        """
        context = {"order_id": order_id, "payment_intent": intent_id}
        with _settling(context):
            try:
                intent = await self.client.v1.payment_intents.capture_async(
                    intent_id, options={"idempotency_key": capture_key(order_id=order_id)}
                )
                status = intent.status
            except stripe.InvalidRequestError as exc:
                # Captured already under a key Stripe no longer keeps, or not capturable:
                # the error carries the PaymentIntent as it stands.
                status = _status_in(exc)
        log.info("capture", extra={**context, "status": status})
        return status

    async def void(self, *, order_id: str, intent_id: str) -> str:
        """Cancel the order's PaymentIntent, releasing an authorization; its status afterwards.

        `canceled` once voided, by this call or an earlier one; any other status is one Stripe
        refused to cancel from (`succeeded`: the money was captured).
        """
        context = {"order_id": order_id, "payment_intent": intent_id}
        with _settling(context):
            try:
                intent = await self.client.v1.payment_intents.cancel_async(
                    intent_id,
                    params={"cancellation_reason": VOID_REASON},
                    options={"idempotency_key": void_key(order_id=order_id)},
                )
                status = intent.status
            except stripe.InvalidRequestError as exc:
                status = _status_in(exc)
        log.info("void", extra={**context, "status": status})
        return status


def not_payable(status: str) -> BadRequestError:
    """What the buyer is told when the order's PaymentIntent is in `status` (not authorized)."""
    if status == "requires_action":
        return BadRequestError("Your card could not be charged without further authentication")
    if status == PROCESSING:
        return BadRequestError("Your payment is still processing, please try again shortly")
    if status == CANCELED:
        log.error("the order's PaymentIntent was canceled")
        return BadRequestError("Payment could not be processed")
    return BadRequestError("Your card was declined.")


@contextmanager
def _for_the_buyer(context: dict[str, Any]) -> Iterator[None]:
    """Stripe's exceptions as the errors the buyer sees."""
    try:
        yield
    except stripe.CardError as exc:
        log.info("card declined", extra={**context, "code": exc.code})
        raise BadRequestError(exc.user_message or "Your card was declined.") from None
    except stripe.IdempotencyError as exc:
        # Our keys always come with the same parameters: this is a bug, not the buyer's doing.
        log.error("stripe idempotency error", extra={**context, "error": str(exc)})
        raise UpstreamError(PROVIDER_UNAVAILABLE) from None
    except stripe.InvalidRequestError as exc:
        log.warning("stripe refused the request", extra={**context, "error": str(exc)})
        raise BadRequestError(exc.user_message or "Payment could not be processed") from None
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
        # The outcome is unknown: nothing is stored, and the next attempt finds out.
        log.warning("stripe unavailable", extra={**context, "error": repr(exc)})
        raise UpstreamError(PROVIDER_UNAVAILABLE) from None
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        # Stripe refuses our key (revoked, rotated, restricted): no card can be charged until
        # it is fixed, whoever asks. Never the buyer's card, so never a decline: this service
        # cannot take payments right now (503), and an operator must be told (error).
        log.error("stripe refused our api key", extra={**context, "error": repr(exc)})
        raise UpstreamError(PROVIDER_UNAVAILABLE, status_code=503) from None
    except stripe.StripeError as exc:
        # Anything else the SDK raises: Stripe's doing or ours, not the buyer's.
        log.error("stripe error", extra={**context, "error": repr(exc)})
        raise UpstreamError(PROVIDER_UNAVAILABLE) from None


@contextmanager
def _settling(context: dict[str, Any]) -> Iterator[None]:
    """Stripe out of reach, or refusing our key, as DependencyUnavailable: the event waits for
    Stripe (or for the key to be fixed), it is not at fault. A dead letter here would be an
    authorization never captured or voided once the key works again. (Stripe's refusals of
    the request itself propagate as they are.)"""
    try:
        yield
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
        log.warning("stripe unavailable while settling", extra={**context, "error": repr(exc)})
        raise DependencyUnavailable(
            f"Stripe unavailable: {exc!r}", dependency=Dependency.STRIPE
        ) from exc
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        # Our configuration, not the event: the same event settles once the key is right.
        log.error(
            "stripe refused our api key while settling", extra={**context, "error": repr(exc)}
        )
        raise DependencyUnavailable(
            f"Stripe unavailable: our api key is refused: {exc!r}", dependency=Dependency.STRIPE
        ) from exc


def _status_in(exc: stripe.InvalidRequestError) -> str:
    """The PaymentIntent's status Stripe reports with a refusal to act on it in its state."""
    stale = exc.error.payment_intent if exc.error is not None else None
    if exc.code != "payment_intent_unexpected_state" or stale is None:
        raise exc
    return stale.status


def _replayed(intent: stripe.PaymentIntent) -> bool:
    response = intent.last_response
    return response is not None and response.headers.get("idempotent-replayed") == "true"


def intent_key(*, order_id: str) -> str:
    """The order's PaymentIntent key: every attempt to pay the order gets the same one.

    Stripe keeps keys for at least 24 hours, far longer than an order can be paid.
    """
    return f"pi-order-{order_id}"


def confirm_key(*, order_id: str, token: str) -> str:
    """One confirmation per order and card.

    A retry with the same card (after a timeout or a 5xx) replays Stripe's first answer; a
    different card after a decline is a new attempt on the same PaymentIntent.
    """
    card = hashlib.sha256(token.encode()).hexdigest()[:32]  # keeps the token out of the key
    return f"pi-confirm-{order_id}-{card}"


def capture_key(*, order_id: str) -> str:
    return f"pi-capture-{order_id}"


def void_key(*, order_id: str) -> str:
    return f"pi-void-{order_id}"


def _card(token: str) -> dict[str, Any]:
    if token.startswith("pm_"):
        return {"payment_method": token}
    # A card token (tok_...) becomes a PaymentMethod inside the same request.
    return {"payment_method_data": {"type": "card", "card": {"token": token}}}
