"""Auth against a real nats-server that is down when the user signs up."""

from typing import Any

import pytest

from ticketing_auth.main import create_app
from ticketing_auth.settings import Settings
from ticketing_common.bus import JetStreamBus
from ticketing_common.events import Event, Subject
from ticketing_testing.apps import running
from ticketing_testing.servers import ServerProcess
from ticketing_testing.waiting import eventually, started

pytestmark = pytest.mark.connected


async def test_signup_succeeds_with_nats_down_and_the_event_goes_out_when_it_is_back(
    nats_server: ServerProcess, mongo: Any
) -> None:
    received: list[Event[Any]] = []

    async def record(event: Event[Any]) -> None:
        received.append(event)

    # The probe's durable exists before the outage: USERS keeps a message only for the durables
    # that exist when it is stored (interest retention; no service consumes user events).
    probe = JetStreamBus(f"nats://{nats_server.url}", "probe")
    probe.subscribe(Subject.USER_CREATED, record)
    await started(probe)
    await probe.close()
    nats_server.stop()
    settings = Settings(
        environment="test",
        jwt_key="test-jwt-key-0123456789abcdef0123456789",
        nats_url=f"nats://{nats_server.url}",
        outbox_sweep_seconds=0.1,
    )
    async with running(create_app(settings, mongo=mongo)) as client:
        res = await client.post(
            "/api/users/signup", json={"email": "down@test.com", "password": "password123"}
        )
        assert res.status_code == 201
        # Still ready (readiness is about the pod): sign-up works, its event waits.
        ready_now = await client.get("/readyz")
        assert ready_now.json() == {"status": "ready", "degraded": ["nats: not connected"]}

        nats_server.start()
        probe = JetStreamBus(f"nats://{nats_server.url}", "probe")
        probe.subscribe(Subject.USER_CREATED, record)
        await started(probe)
        try:

            async def delivered() -> bool:
                return [e.data.email for e in received] == ["down@test.com"]

            await eventually(delivered, timeout=20)
            assert received[0].data.id == res.json()["id"]

            async def ready() -> bool:
                return (await client.get("/readyz")).json() == {"status": "ready"}

            await eventually(ready, timeout=20)
        finally:
            await probe.close()
