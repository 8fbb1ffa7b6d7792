"""Run the fake in a background thread, for tests: `FakeStripeServer().start()`.

A real HTTP server on loopback rather than an in-process transport, so the code under test uses
the Stripe SDK exactly as in production: its own HTTP client, retries, backoff and error parsing.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import uvicorn

from ticketing_fakestripe.app import create_app
from ticketing_fakestripe.state import FakeState


def require_loopback(host: str) -> str:
    """The fake takes any `sk_test_` key: it must never be reachable from another machine."""
    if host == "localhost":
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"fake Stripe binds loopback addresses only, not {host!r}")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class FakeStripeServer:
    """The fake on `host:port` (a free port by default), in a daemon thread."""

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1") -> None:
        self.host = require_loopback(host)
        self.port = port or _free_port(host)
        self.state = FakeState()
        config = uvicorn.Config(
            create_app(self.state),
            host=self.host,
            port=self.port,
            log_level="warning",
            # Nothing here needs websockets or lifespan events; leaving them off also keeps
            # their optional imports (and deprecation warnings) out of the test process.
            ws="none",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-stripe", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> FakeStripeServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fake Stripe did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeStripeServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
