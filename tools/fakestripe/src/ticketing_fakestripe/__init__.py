"""A Stripe-compatible fake for dev and tests: PaymentIntents and Refunds over HTTP, on loopback.

The payments service points the official Stripe SDK at it with STRIPE_API_BASE, so no test and
no local run needs the internet or a Stripe account (flaw 9 of the app this replaces).
"""

from ticketing_fakestripe.app import create_app
from ticketing_fakestripe.server import FakeStripeServer
from ticketing_fakestripe.state import FakeState

__all__ = ["FakeState", "FakeStripeServer", "create_app"]
