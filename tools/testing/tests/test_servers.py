"""The servers tests start: ports that never collide."""

import socket
from typing import Any

import pytest

from ticketing_testing import servers


def test_free_port_never_hands_out_a_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel may offer the same port to two probes in a row (it is free again once the
    probe closes): the second caller still gets another one."""
    offered = iter([41001, 41001, 41002, 41001, 41003])

    class Probe:
        def __init__(self, *_: Any) -> None:
            self.port = 0

        def __enter__(self) -> "Probe":
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def bind(self, _: object) -> None:
            self.port = next(offered)

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(servers, "_handed_out", set())
    monkeypatch.setattr(socket, "socket", Probe)
    assert [servers.free_port() for _ in range(3)] == [41001, 41002, 41003]


def test_free_ports_are_free_and_distinct() -> None:
    ports = [servers.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
