import pytest
import stripe

from ticketing_fakestripe import FakeStripeServer


@pytest.fixture
def client(fake_stripe: FakeStripeServer) -> stripe.StripeClient:
    """The official SDK, pointed at the fake, with the retries the payments service uses."""
    return stripe.StripeClient(
        "sk_test_fake",
        base_addresses={"api": fake_stripe.base_url},
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=5),
    )
