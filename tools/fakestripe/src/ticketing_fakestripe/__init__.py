"""A Stripe-compatible fake for dev and tests."""
