"""What tracing costs one HTTP request in-process: CPU per request through the services' HTTP
telemetry middleware (`HttpTelemetry`) around an app that answers at once, with tracing off,
on with no trace sampled, and on with every trace sampled and written as JSON lines (the
exporter's thread counted: process CPU time).

    .venv/bin/python -m ticketing_devstack.bench.spans [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator

from starlette.types import Message, Receive, Scope, Send

from ticketing_common.settings import ServiceSettings
from ticketing_common.telemetry import tracing
from ticketing_common.telemetry.http import HttpTelemetry

# Tracing off; on, no new trace kept; on, every trace kept.
MODES = {"off": None, "not sampled": 0.0, "sampled": 1.0}
SCOPE: Scope = {
    "type": "http",
    "method": "GET",
    "path": "/api/users/currentuser",
    "headers": [(b"host", b"bench"), (b"cookie", b"session=x")],
}


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _send(message: Message) -> None:
    pass


@contextlib.contextmanager
def _tracing_env(kept: float | None) -> Iterator[None]:
    """The OpenTelemetry variables for tracing off (`kept` None) or on with the share `kept` of
    new traces kept, while tracing is set up (the SDK reads them from the environment)."""
    wanted = {
        "OTEL_SDK_DISABLED": str(kept is None).lower(),
        "OTEL_TRACES_SAMPLER_ARG": str(1.0 if kept is None else kept),
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def per_request_us(kept: float | None, requests: int) -> float:
    """Process CPU per request, in us, after a warm-up of a tenth as many."""
    with tempfile.TemporaryDirectory() as traces, _tracing_env(kept):
        settings = ServiceSettings(environment="development", traces_dir=traces)
        setup = tracing.configure("bench", settings)
        app = HttpTelemetry(_answer, service="bench")
        try:
            for _ in range(requests // 10):
                await app(SCOPE, _receive, _send)
            started = time.process_time()
            for _ in range(requests):
                await app(SCOPE, _receive, _send)
        finally:
            setup.shutdown()  # the exporter's thread writes what is left: counted too
        return (time.process_time() - started) / requests * 1e6


async def compare(requests: int) -> dict[str, float]:
    return {mode: await per_request_us(kept, requests) for mode, kept in MODES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    for mode, us in asyncio.run(compare(args.requests)).items():
        print(f"tracing {mode:<12} {us:6.1f} us of CPU per request")


if __name__ == "__main__":
    main()
