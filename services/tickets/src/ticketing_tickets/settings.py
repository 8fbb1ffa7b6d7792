"""Tickets settings: the common ones, named for this service."""

from __future__ import annotations

from functools import cache

from ticketing_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Tickets' settings: every service's, nothing of its own."""

    service_name: str = "tickets"


@cache
def get_settings() -> Settings:
    return Settings()
