"""The load generator: wrk's script and summary, and the asyncio driver used without wrk."""

import asyncio
import json

from ticketing_devstack.bench.load import (
    MARK,
    Load,
    _request_bytes,
    drive,
    parse_summary,
    pinned,
    wrk_script,
)


def test_the_wrk_script_sends_the_request_and_prints_a_summary() -> None:
    script = wrk_script(
        Load("http://h/x", "POST", '{"a": "]]"}', {"Cookie": "session=abc"}, connections=4)
    )
    assert "wrk.method = [====[POST]====]" in script
    assert 'wrk.body = [====[{"a": "]]"}]====]' in script
    assert "wrk.headers[ [====[Cookie]====] ] = [====[session=abc]====]" in script
    assert "done = function(summary, latency, requests)" in script


def test_a_summary_is_read_from_the_tools_output() -> None:
    raw = {"requests": 2000, "micros": 2_000_000, "p50": 1500, "p99": 9000, "errors": 3}
    result = parse_summary(f"Running 2s test\n{MARK}{json.dumps(raw)}\n", "wrk")
    assert (result.rps, result.p50, result.p99, result.errors) == (1000, 0.0015, 0.009, 3)


def test_pinning_uses_taskset_only_when_asked() -> None:
    assert pinned(None) == []
    assert pinned(1)[-2:] in (["-c", "1"], [])


def test_the_request_is_plain_http_1_1_with_its_body() -> None:
    raw = _request_bytes(Load("http://127.0.0.1:9/api?x=1", "POST", "{}", {"A": "b"}))
    assert raw.startswith(b"POST /api?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nA: b\r\n")
    assert raw.endswith(b"Content-Length: 2\r\n\r\n{}")


async def test_the_asyncio_driver_counts_answers_and_errors() -> None:
    answered = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                answered += 1
                status = b"200 OK" if answered % 2 else b"503 Busy"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await drive(Load(f"http://127.0.0.1:{port}/", connections=2, seconds=0.3))
    assert result.requests > 10
    assert abs(result.errors - result.requests / 2) <= 2
    assert 0 < result.p50 <= result.p99
