"""Charging a card through Stripe: one PaymentIntent, created and confirmed in one call.

The official SDK, async end to end (`create_async` over its HTTPX client), so a slow Stripe never
blocks the event loop. One client per process: it holds the connection pool.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any, cast

import stripe
from stripe.params import PaymentIntentCreateParams

from ticketing_common.errors import BadRequestError, UpstreamError
from ticketing_payments.settings import Settings

log = logging.getLogger("ticketing.payments.charges")

CURRENCY = "usd"
PROVIDER_UNAVAILABLE = "Payment provider unavailable, please try again"


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


class StripeCharger:
    """Charges cards through Stripe; built once per process (it owns the connection pool)."""

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
        await self.http_client.close_async()  # type: ignore[no-untyped-call]

    async def charge(self, *, order_id: str, token: str, amount_cents: int) -> str:
        """Charge the card; the PaymentIntent's id. Raises the error to show the buyer otherwise."""
        params = {
            "amount": amount_cents,
            "currency": CURRENCY,
            "confirm": True,
            # Cards only: they never redirect, so no return_url is needed to confirm here.
            "payment_method_types": ["card"],
            "metadata": {"orderId": order_id},
            **_card(token),
        }
        context = {"order_id": order_id, "amount_cents": amount_cents}
        try:
            intent = await self.client.v1.payment_intents.create_async(
                # The SDK's types leave out `payment_method_data[card]` (raw card numbers need PCI
                # compliance), but the API takes a card token there.
                params=cast(PaymentIntentCreateParams, params),
                options={"idempotency_key": idempotency_key(order_id=order_id, token=token)},
            )
        except stripe.CardError as exc:
            log.info("card declined", extra={**context, "code": exc.code})
            raise BadRequestError(exc.user_message or "Your card was declined.") from None
        except stripe.InvalidRequestError as exc:
            log.warning("stripe refused the request", extra={**context, "error": str(exc)})
            raise BadRequestError(exc.user_message or "Payment could not be processed") from None
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
            log.warning("stripe unavailable", extra={**context, "error": repr(exc)})
            raise UpstreamError(PROVIDER_UNAVAILABLE) from None
        except stripe.StripeError as exc:
            # Authentication, permission or idempotency errors: our configuration, not the buyer.
            log.error("stripe error", extra={**context, "error": repr(exc)})
            raise UpstreamError(PROVIDER_UNAVAILABLE) from None
        if intent.status != "succeeded":
            # E.g. requires_action (3-D Secure): this API has no step to complete it, so no sale.
            log.info("payment not completed", extra={**context, "status": intent.status})
            raise BadRequestError("Your card could not be charged without further authentication")
        log.info("charged", extra={**context, "payment_intent": intent.id})
        return intent.id


def idempotency_key(*, order_id: str, token: str) -> str:
    """One Stripe idempotency key per order and card.

    A retry with the same card (after a timeout or a 5xx) replays Stripe's first answer instead
    of charging again; a different card after a decline is a new attempt.
    """
    card = hashlib.sha256(token.encode()).hexdigest()[:32]  # keeps the token out of the key
    return f"payments-order-{order_id}-{card}"


def _card(token: str) -> dict[str, Any]:
    if token.startswith("pm_"):
        return {"payment_method": token}
    # A card token (tok_...) becomes a PaymentMethod inside the same request.
    return {"payment_method_data": {"type": "card", "card": {"token": token}}}
