"""The service factory: error shape, body limit, health, readiness."""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BeforeValidator
from pymongo.errors import ServerSelectionTimeoutError

from ticketing_common.auth import CurrentUser
from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.errors import SERVER_ERROR, BadRequestError, NotFoundError, error_body
from ticketing_common.servers import free_port
from ticketing_common.service import ServiceSpec, create_service_app
from ticketing_common.settings import ServiceSettings
from ticketing_common.testing import eventually, running, session_cookie
from ticketing_common.validation import RequestBody, money_check, text_check

router = APIRouter(prefix="/api/things")


class ThingCreate(RequestBody):
    title: Annotated[str, BeforeValidator(text_check("Title is required"))]
    price: Annotated[Any, BeforeValidator(money_check("Price must be greater than 0"))]


@router.post("", status_code=201)
async def create(body: ThingCreate, user: CurrentUser) -> dict[str, Any]:
    return {"title": body.title, "price": str(body.price), "by": user.id}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals /etc/passwd")


@router.get("/db-down")
async def db_down() -> None:
    raise ServerSelectionTimeoutError("127.0.0.1:1: connection refused")


@router.get("/rule")
async def rule() -> None:
    raise BadRequestError("Ticket is already reserved")


@router.get("/missing")
async def missing() -> None:
    raise NotFoundError()


@router.get("/paged")
async def paged(limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, int]:
    return {"limit": limit}


@router.post("/bg")
async def bg(tasks: BackgroundTasks) -> dict[str, str]:
    return {}


SETTINGS = ServiceSettings(
    service_name="things", environment="test", jwt_key="k" * 40, max_body_bytes=1024
)


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus("things")


@pytest.fixture
async def client(mongo: Any, bus: InMemoryBus) -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        ServiceSpec(name="things", routers=[router]), SETTINGS, mongo=mongo, bus=bus
    )
    async with running(app) as c:
        c.cookies.update(session_cookie(SETTINGS, user_id="u1"))
        yield c


async def test_validation_errors_are_400_with_field_and_our_message(
    client: httpx.AsyncClient,
) -> None:
    res = await client.post("/api/things", json={"title": "  ", "price": -1})
    assert res.status_code == 400
    assert res.json() == {
        "errors": [
            {"message": "Title is required", "field": "title"},
            {"message": "Price must be greater than 0", "field": "price"},
        ]
    }


@pytest.mark.parametrize("price", [0, "0", -5, "abc", "1.234", True, None, [], "NaN", "Infinity"])
async def test_bad_prices_are_rejected(client: httpx.AsyncClient, price: object) -> None:
    res = await client.post("/api/things", json={"title": "t", "price": price})
    assert res.status_code == 400
    assert res.json()["errors"] == [{"message": "Price must be greater than 0", "field": "price"}]


@pytest.mark.parametrize(("price", "exact"), [(19.99, "19.99"), ("20", "20.00"), (0.1, "0.10")])
async def test_good_prices_are_exact_decimals(
    client: httpx.AsyncClient, price: object, exact: str
) -> None:
    res = await client.post("/api/things", json={"title": "t", "price": price})
    assert res.status_code == 201
    assert res.json()["price"] == exact


async def test_malformed_json_is_400_not_500(client: httpx.AsyncClient) -> None:
    res = await client.post(
        "/api/things", content=b'{"title": "x",', headers={"content-type": "application/json"}
    )
    assert res.status_code == 400
    assert res.json() == {"errors": [{"message": "Request body must be valid JSON"}]}


async def test_a_json_array_body_is_400(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/things", json=[1, 2])
    assert res.status_code == 400
    assert res.json() == {"errors": [{"message": "Request body must be a JSON object"}]}


async def test_a_missing_body_is_400(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/things")
    assert res.status_code == 400
    assert res.json()["errors"][0]["message"] == "Request body is required"


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/things", json={"title": "x" * 1_000_000, "price": 1})
    assert res.status_code == 413
    assert res.json() == {"errors": [{"message": "Request body too large"}]}


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1000

    res = await client.post(
        "/api/things", content=chunks(), headers={"content-type": "application/json"}
    )
    assert res.status_code == 413


async def test_unknown_routes_are_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/nothing/here")
    assert res.status_code == 404
    assert res.json() == {"errors": [{"message": "Not Found"}]}


async def test_wrong_method_is_405_in_the_error_shape(client: httpx.AsyncClient) -> None:
    res = await client.delete("/api/things/rule")
    assert res.status_code == 405
    assert list(res.json()) == ["errors"]


async def test_a_query_parameter_out_of_range_is_400_with_field(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/things/paged", params={"limit": "0"})
    assert res.status_code == 400
    assert res.json()["errors"][0]["field"] == "limit"


async def test_business_rules_and_not_found_keep_their_message(client: httpx.AsyncClient) -> None:
    res = await client.get("/api/things/rule")
    assert (res.status_code, res.json()) == (
        400,
        {"errors": [{"message": "Ticket is already reserved"}]},
    )
    res = await client.get("/api/things/missing")
    assert (res.status_code, res.json()) == (404, {"errors": [{"message": "Not Found"}]})


async def test_an_unexpected_error_is_500_with_a_generic_message_and_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    res = await client.get("/api/things/boom")
    assert res.status_code == 500
    assert res.json() == {"errors": [{"message": "Something went wrong on our side"}]}
    assert "passwd" not in res.text
    assert "Traceback" not in res.text
    assert "secret internals" in caplog.text  # the trace goes to the log


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, bytes]:
    """One GET on an open keep-alive connection: (status, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: things\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
    assert length is not None, head
    return int(head.split()[1]), await reader.readexactly(int(length.group(1)))


async def test_a_500_is_logged_once_and_the_connection_stays_usable(
    mongo: Any, bus: InMemoryBus, caplog: pytest.LogCaptureFixture
) -> None:
    # A real server: uvicorn closed the keep-alive connection after an error that reached it,
    # and a proxy's next request on that connection failed (502).
    app = create_service_app(
        ServiceSpec(name="things", routers=[router]), SETTINGS, mongo=mongo, bus=bus
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, body = await _exchange(reader, writer, "/api/things/boom")
        assert (status, json.loads(body)) == (500, error_body(SERVER_ERROR))
        # The same connection answers the next request.
        assert (await _exchange(reader, writer, "/healthz"))[0] == 200
        writer.close()
    finally:
        server.should_exit = True
        await serving
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.getMessage(), r.exc_info is not None) for r in errors] == [("unhandled error", True)]


async def test_not_signed_in_is_401(client: httpx.AsyncClient) -> None:
    client.cookies.clear()
    res = await client.post("/api/things", json={"title": "t", "price": 1})
    assert res.status_code == 401
    assert res.json() == {"errors": [{"message": "Not authorized"}]}


async def test_healthz_is_alive(client: httpx.AsyncClient) -> None:
    res = await client.get("/healthz")
    assert (res.status_code, res.json()) == (200, {"status": "ok"})


async def test_readyz_reports_mongo_and_nats(client: httpx.AsyncClient, bus: InMemoryBus) -> None:
    assert (await client.get("/readyz")).status_code == 200
    bus.broker.available = False
    res = await client.get("/readyz")
    assert res.status_code == 503
    assert "nats" in res.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"title": "t", "price": ' + b"9" * 5000 + b"}",  # beyond Python's int digit limit
        b"[" * 10_000 + b"]" * 10_000,  # beyond the decoder's recursion limit
        b'{"title": "t", "price": 5',
    ],
)
async def test_json_the_decoder_gives_up_on_is_400_invalid_json(
    mongo: Any, bus: InMemoryBus, body: bytes
) -> None:
    roomy = SETTINGS.model_copy(update={"max_body_bytes": 64 * 1024})
    app = create_service_app(
        ServiceSpec(name="things", routers=[router]), roomy, mongo=mongo, bus=bus
    )
    async with running(app) as client:
        client.cookies.update(session_cookie(SETTINGS, user_id="u1"))
        res = await client.post(
            "/api/things", content=body, headers={"content-type": "application/json"}
        )
    assert (res.status_code, res.json()) == (
        400,
        {"errors": [{"message": "Request body must be valid JSON"}]},
    )


async def test_a_database_outage_is_503_try_again_not_a_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    res = await client.get("/api/things/db-down")
    assert (res.status_code, res.json()) == (
        503,
        {"errors": [{"message": "Service temporarily unavailable, try again"}]},
    )
    assert res.headers["retry-after"] == "1"
    assert "connection refused" not in res.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_bus_is_built_with_the_retry_settings(mongo: Any) -> None:
    from ticketing_common.bus import JetStreamBus

    settings = ServiceSettings(
        service_name="things",
        environment="test",
        jwt_key="k" * 40,
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
