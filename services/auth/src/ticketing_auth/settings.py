"""Auth settings: the common ones, named for this service."""

from __future__ import annotations

from functools import cache

from pydantic import Field

from ticketing_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "auth"
    # Argon2id's cost. The default is OWASP's first recommendation (19 MiB, 2 passes, 1 lane;
    # Password Storage Cheat Sheet), which is also the floor enforced here: ~25 ms of one core
    # per hash on a 2-core machine, where pwdlib's default (64 MiB, t=3, p=4) took ~280 ms.
    # Raise them where CPU allows; existing hashes keep verifying (their parameters are in them).
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)


@cache
def get_settings() -> Settings:
    return Settings()
