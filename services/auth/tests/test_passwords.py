"""Passwords (passwords.py): Argon2id with the settings' parameters, never below OWASP's floor,
hashed on a pool sized by the CPUs the process may use."""

import os

import pytest
from pydantic import ValidationError

from ticketing_auth import passwords
from ticketing_auth.passwords import Passwords
from ticketing_auth.settings import Settings
from ticketing_testing.apps import TEST_JWT_KEY


def _settings(**overrides: int) -> Settings:
    return Settings(environment="test", jwt_key=TEST_JWT_KEY, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "weaker",
    [{"argon2_memory_kib": 16_384}, {"argon2_time_cost": 1}, {"argon2_parallelism": 0}],
)
def test_parameters_below_the_owasp_minimum_are_refused(weaker: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        _settings(**weaker)


async def test_a_hash_carries_the_settings_parameters_and_verifies() -> None:
    settings = _settings(argon2_memory_kib=20_480, argon2_time_cost=3)
    hasher = Passwords(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    try:
        hashed = await hasher.hash("correct horse")
        assert hashed.startswith("$argon2id$v=19$m=20480,t=3,p=1$")
        assert await hasher.verify("correct horse", hashed)
        assert not await hasher.verify("wrong horse", hashed)
        assert not await hasher.verify("correct horse", None)  # unknown user
    finally:
        hasher.close()


async def test_a_hash_made_with_older_parameters_still_verifies() -> None:
    old = Passwords(memory_kib=65_536, time_cost=3, parallelism=4)
    new = Passwords(memory_kib=19_456, time_cost=2, parallelism=1)
    try:
        assert await new.verify("s3cret pass", await old.hash("s3cret pass"))
    finally:
        old.close()
        new.close()


def test_the_pool_is_sized_by_the_cpus_the_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert passwords.usable_cpus() == 1
    hasher = Passwords(memory_kib=19_456, time_cost=2, parallelism=1)
    assert hasher.threads == 1
    hasher.close()
