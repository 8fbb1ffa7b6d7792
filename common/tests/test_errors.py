"""The error shape (errors.py; answered by service/_errors.py): every error is
`{"errors": [{"message", "field"?}]}`, with our messages; an unexpected error is a logged 500
that tells nothing, an outage a 503."""

import asyncio
import json
import logging
import re
from collections.abc import Callable

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from ticketing_common.errors import error_body
from ticketing_common.settings import ServiceSettings
from ticketing_testing.apps import running, sign_in
from ticketing_testing.servers import free_port
from ticketing_testing.waiting import eventually


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


@pytest.mark.parametrize(
    "body",
    [
        b'{"title": "t", "price": ' + b"9" * 5000 + b"}",  # beyond Python's int digit limit
        b"[" * 10_000 + b"]" * 10_000,  # beyond the decoder's recursion limit
        b'{"title": "t", "price": 5',
    ],
)
async def test_json_the_decoder_gives_up_on_is_400_invalid_json(
    things_app: Callable[..., FastAPI], settings: ServiceSettings, body: bytes
) -> None:
    roomy = settings.model_copy(update={"max_body_bytes": 64 * 1024})
    async with running(things_app(roomy)) as client:
        sign_in(client, settings)
        res = await client.post(
            "/api/things", content=body, headers={"content-type": "application/json"}
        )
    assert (res.status_code, res.json()) == (
        400,
        {"errors": [{"message": "Request body must be valid JSON"}]},
    )


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
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # A real server: uvicorn closed the keep-alive connection after an error that reached it,
    # and a proxy's next request on that connection failed (502).
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, body = await _exchange(reader, writer, "/api/things/boom")
        assert (status, json.loads(body)) == (500, error_body("Something went wrong on our side"))
        # The same connection answers the next request.
        assert (await _exchange(reader, writer, "/healthz"))[0] == 200
        writer.close()
    finally:
        server.should_exit = True
        await serving
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.getMessage(), r.exc_info is not None) for r in errors] == [("unhandled error", True)]


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
