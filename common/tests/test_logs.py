"""Logs (logs.py): one JSON format; uvicorn's access log only when a setting asks for it."""

import asyncio
import logging
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from ticketing_common.service import ServiceSpec, create_service_app
from ticketing_common.settings import ServiceSettings
from ticketing_testing.apps import TEST_JWT_KEY
from ticketing_testing.servers import free_port
from ticketing_testing.waiting import eventually


@pytest.mark.parametrize("access_log", [False, True])
async def test_the_access_log_is_written_only_when_asked_for(
    access_log: bool, mongo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServiceSettings(
        service_name="things", environment="test", jwt_key=TEST_JWT_KEY, access_log=access_log
    )

    def factory() -> FastAPI:
        return create_service_app(ServiceSpec(name="things", routers=[]), settings, mongo=mongo)

    # As the services run: `uvicorn --factory --no-access-log`, so our logging is configured
    # after uvicorn's.
    port = free_port()
    config = uvicorn.Config(
        factory, factory=True, port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        # uvicorn decides per connection from whether its access logger has a handler: with
        # none it does not even format the line (what the access log cost).
        assert logging.getLogger("uvicorn.access").hasHandlers() is access_log
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
    finally:
        server.should_exit = True
        await serving
    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    logger = logging.getLogger("uvicorn.access")
    state = (logger.level, logger.disabled, logger.propagate, logging.getLogger().level)
    assert len(access) == (1 if access_log else 0), state
