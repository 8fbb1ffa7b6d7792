"""The service factory: health, readiness, the bus it builds."""

from typing import Any

import httpx

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.service import ServiceSpec, create_service_app
from ticketing_common.settings import ServiceSettings
from ticketing_testing.apps import TEST_JWT_KEY, running
from ticketing_testing.servers import free_port


async def test_healthz_is_alive(client: httpx.AsyncClient) -> None:
    res = await client.get("/healthz")
    assert (res.status_code, res.json()) == (200, {"status": "ok"})


async def test_readyz_reports_mongo_and_nats(client: httpx.AsyncClient, bus: InMemoryBus) -> None:
    assert (await client.get("/readyz")).status_code == 200
    bus.broker.available = False
    res = await client.get("/readyz")
    assert res.status_code == 503
    assert "nats" in res.json()["errors"][0]["message"]


async def test_the_bus_is_built_with_the_retry_settings(mongo: Any) -> None:
    from ticketing_common.bus import JetStreamBus

    settings = ServiceSettings(
        service_name="things",
        environment="test",
        jwt_key=TEST_JWT_KEY,
        nats_url=f"nats://127.0.0.1:{free_port()}",  # nobody there: the bus keeps trying
        nats_ack_wait_seconds=12,
        nats_max_deliver=7,
        nats_retry_delay_seconds=0.25,
        nats_retry_horizon_seconds=600,
    )
    app = create_service_app(ServiceSpec(name="things", routers=[]), settings, mongo=mongo)
    async with running(app):
        bus = app.state.runtime.bus
        assert isinstance(bus, JetStreamBus)
        assert (bus.ack_wait, bus.policy.max_deliver, bus.policy.retry_delay) == (12, 7, 0.25)
        assert bus.policy.horizon == 600


async def test_mongo_commands_are_counted_only_when_asked(mongo: Any) -> None:
    def app_with(count: bool) -> Any:
        settings = ServiceSettings(
            service_name="things",
            environment="test",
            jwt_key=TEST_JWT_KEY,
            mongo_count_commands=count,
        )
        return create_service_app(
            ServiceSpec(name="things", routers=[]), settings, mongo=mongo, bus=InMemoryBus("things")
        )

    async with running(app_with(False)) as client:
        assert (await client.get("/debug/mongo-commands")).status_code == 404
    async with running(app_with(True)) as client:
        res = await client.get("/debug/mongo-commands")
        assert res.status_code == 200
        assert isinstance(res.json(), dict)
