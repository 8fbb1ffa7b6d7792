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


@pytest.mark.connected
def test_the_redis_fixture_refuses_a_client_without_its_password(
    redis_server: servers.ServerProcess,
) -> None:
    """Redis has a password in every topology, the tests' included; the fixture's URL has it."""
    from redis import Redis
    from redis.exceptions import AuthenticationError

    assert redis_server.password
    bare = Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5)
    with pytest.raises(AuthenticationError):
        bare.ping()
    wrong = Redis.from_url(f"redis://:nope@127.0.0.1:{redis_server.port}/0", socket_timeout=5)
    with pytest.raises(AuthenticationError):
        wrong.ping()
    assert Redis.from_url(f"redis://{redis_server.url}/0", socket_timeout=5).ping()
    # Not on the command line, where any local user's `ps` shows it.
    assert redis_server.password not in " ".join(redis_server.args)
    # A restart keeps it: the URLs already handed out still work.
    redis_server.restart()
    assert Redis.from_url(f"redis://{redis_server.url}/0", socket_timeout=5).ping()
