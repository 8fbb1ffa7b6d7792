"""Each process's settings as environment variables, derived from its pydantic-settings class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from ticketing_auth.settings import Settings as AuthSettings
from ticketing_client.settings import Settings as ClientSettings
from ticketing_common.service import ServiceSpec
from ticketing_common.settings import OTEL_VARIABLES, ServiceSettings
from ticketing_expiration.settings import Settings as ExpirationSettings
from ticketing_orders.settings import Settings as OrdersSettings
from ticketing_payments.settings import Settings as PaymentsSettings
from ticketing_tickets.settings import Settings as TicketsSettings

# uvicorn's own options, read from UVICORN_* (it is the server of every HTTP container).
UVICORN_ENV = frozenset(
    {"UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "UVICORN_TIMEOUT_KEEP_ALIVE", "UVICORN_RELOAD"}
)
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Process:
    settings: type[BaseSettings]
    uses_mongo: bool
    http: bool = True


def _spec(module: str) -> ServiceSpec[Any, Any]:
    import importlib

    spec: ServiceSpec[Any, Any] = importlib.import_module(module).SPEC
    return spec


def processes() -> dict[str, Process]:
    """Every container of ours, by the name its Deployment gives it."""
    return {
        "auth": Process(AuthSettings, _spec("ticketing_auth.main").uses_mongo),
        "tickets": Process(TicketsSettings, _spec("ticketing_tickets.main").uses_mongo),
        "orders": Process(OrdersSettings, _spec("ticketing_orders.main").uses_mongo),
        "payments": Process(PaymentsSettings, _spec("ticketing_payments.main").uses_mongo),
        "expiration": Process(ExpirationSettings, _spec("ticketing_expiration.main").uses_mongo),
        "expiration-worker": Process(ExpirationSettings, uses_mongo=False, http=False),
        "client": Process(ClientSettings, uses_mongo=False),
    }


def env_names(settings: type[BaseSettings]) -> dict[str, str | None]:
    """Environment variable -> field, as pydantic-settings reads them (prefix, aliases); for a
    service, also the OpenTelemetry SDK's variables it honours -> None (no field: the SDK reads
    them itself)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    out: dict[str, str | None] = {}
    if issubclass(settings, ServiceSettings):
        out.update(dict.fromkeys((variable.name for variable in OTEL_VARIABLES), None))
    for name, field in settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            keys = [alias]
        elif isinstance(alias, AliasChoices):
            keys = [c for c in alias.choices if isinstance(c, str)]
        else:
            keys = [prefix + name]
        for key in keys:
            out[key.upper()] = name
    return out


def required(process: Process) -> set[str]:
    """What a cluster must set: fields without a default, and those whose default is a server on
    the loopback (none runs in the pod), but Mongo for a process that uses none."""
    names = env_names(process.settings)
    fields = process.settings.model_fields
    needed: set[str] = set()
    for env, field in names.items():
        if field is None:
            continue  # the SDK's: never required
        info = fields[field]
        if info.is_required():
            needed.add(env)
        elif isinstance(info.default, str) and any(h in info.default for h in LOOPBACK):
            if field == "mongo_url" and not process.uses_mongo:
                continue
            needed.add(env)
    return needed


def build(process: Process, env: dict[str, str]) -> BaseSettings:
    """The settings the process would start with, from exactly `env`, whatever this process's
    own environment holds (validated as the class validates; raises when invalid)."""
    names = env_names(process.settings)
    values = {field: v for k, v in env.items() if (field := names.get(k)) is not None}
    return process.settings.model_validate(values)
