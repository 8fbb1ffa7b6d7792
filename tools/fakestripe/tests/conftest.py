from collections.abc import Iterator

import pytest
import stripe

from ticketing_fakestripe import FakeStripeServer


@pytest.fixture(scope="module")
def server() -> Iterator[FakeStripeServer]:
    with FakeStripeServer() as running:
        yield running


@pytest.fixture
def fake(server: FakeStripeServer) -> FakeStripeServer:
    server.state.reset()
    return server


@pytest.fixture
def client(fake: FakeStripeServer) -> stripe.StripeClient:
    """The official SDK, pointed at the fake, with the retries the payments service uses."""
    return stripe.StripeClient(
        "sk_test_fake",
        base_addresses={"api": fake.base_url},
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=5),
    )
