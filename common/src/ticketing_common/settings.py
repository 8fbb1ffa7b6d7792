"""Service settings, read from environment variables, and who they are for.

Every field is one environment variable, its name in capitals (`mongo_url`: MONGO_URL). Each is
declared in a class that says who turns it:
- `Knobs`: what a deployer sets or decides. Where things are (URLs, paths), credentials and
  secrets, names, the business rules the SPEC names (ORDER_EXPIRATION_SECONDS,
  MAX_OPEN_ORDERS_PER_USER, EXPIRY_GRACE_SECONDS, ...), the streams' sizes. Each says what it is
  in its docstring, which docs/settings.md shows (`python -m ticketing_deploy.settings_doc`
  writes that file from these classes; a test fails when it is stale).
- `Tuning`: how the code runs (concurrency, batch sizes, backoffs, timeouts, sweep periods).
  The defaults are safe; tests and benchmarks change them, a deployment seldom needs to.
A service's `Settings` is its own knobs and tuning on top of `ServiceSettings` (pydantic-settings
models composed by inheritance), so it stays one flat, frozen object read by attribute.

One fact, one field: a variable that several services read is declared once, in this module
(`RedisKnobs`, `ExpiryGraceKnobs`, `ExpirySweepTuning`, the web client's share of
`ProcessKnobs`), never once per service.

The OpenTelemetry SDK's own variables (OTEL_*) are no fields: the SDK reads them from the
environment itself when `telemetry.tracing.configure` sets tracing up. `OTEL_VARIABLES` names
those a deployment may set, for the deployment checks and docs/settings.md.

Settings are never built at import time: each service exposes a cached factory
(`functools.cache`) so tests can build their own instance and production builds exactly one.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import (
    ByteSize,
    Field,
    NonNegativeFloat,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# Only ever used when ENVIRONMENT=development (the default for a laptop); any other environment
# must supply JWT_KEY, so this value cannot sign a production session.
DEV_JWT_KEY = "dev-only-insecure-jwt-key-change-me-0123456789"
MIN_JWT_KEY_BYTES = 32
MiB = 1024 * 1024

# Every settings class reads the environment only (no .env file), ignores variables that are not
# its own (a pod's environment holds many), is frozen, and takes a field's docstring as its
# description (what docs/settings.md shows).
CONFIG = SettingsConfigDict(
    env_file=None, extra="ignore", frozen=True, use_attribute_docstrings=True
)


class Knobs(BaseSettings):
    """The base of every class of a deployer's knobs (see the module's docstring)."""

    model_config = CONFIG


class Tuning(BaseSettings):
    """The base of every class of internal tuning, whose defaults are safe."""

    model_config = CONFIG


class OtelVariable(NamedTuple):
    """A variable the OpenTelemetry SDK reads itself: its name, default and meaning."""

    name: str
    default: str
    meaning: str


# The OpenTelemetry SDK's variables a deployment may set (it reads them when tracing is set up;
# see `telemetry.tracing`). Any other OTEL_* variable is the SDK's too, but these are the ones
# the services are known to honour.
OTEL_VARIABLES = (
    OtelVariable(
        "OTEL_SDK_DISABLED",
        "false",
        "`true` turns tracing off altogether (no spans, no trace context passed on); metrics "
        "stay on.",
    ),
    OtelVariable(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "unset",
        "An OTLP/HTTP collector (`http://otel-collector:4318`): spans are exported to its "
        "`/v1/traces`. Unset (and no OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): not exported.",
    ),
    OtelVariable(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "unset",
        "The full URL spans are exported to, instead of OTEL_EXPORTER_OTLP_ENDPOINT's.",
    ),
    OtelVariable(
        "OTEL_TRACES_SAMPLER_ARG",
        "1.0",
        "The share of new traces kept, 0 to 1 (a continued trace keeps its parent's choice; "
        "OTEL_TRACES_SAMPLER is not read: this share applies whatever it says).",
    ),
    OtelVariable(
        "OTEL_RESOURCE_ATTRIBUTES",
        "unset",
        "Attributes every span's resource gets (`deployment.environment=prod,...`); "
        "`service.name` stays the service's own, whatever this or OTEL_SERVICE_NAME says.",
    ),
)


class ProcessKnobs(Knobs):
    """What every process of ours reads, the web client's included."""

    # Fail closed: a deployment that forgets ENVIRONMENT is production, so it cannot fall back
    # to the public development keys. `make up` and the tests say what they are.
    environment: Literal["development", "test", "production"] = "production"
    """`development` (a laptop: public development keys allowed), `test` or `production`."""
    log_level: str = "INFO"
    """The level of the JSON log lines on stdout (DEBUG, INFO, WARNING, ...)."""
    # The client's address is the first one, from the right, that is not a trusted proxy;
    # anything further left was written by the client itself.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    """The proxies whose X-Forwarded-For (and -Proto) are believed: addresses or networks,
    comma-separated (the variable and default uvicorn reads too). In Kubernetes, the pods'
    network, where the ingress controller and the web client run."""
    cookie_name: str = "session"
    """The session cookie's name (the web client binds its form tokens to it)."""
    cookie_secure: bool = True
    """Whether cookies are Secure (HTTPS only); `false` for plain-HTTP local runs."""


class ServiceKnobs(ProcessKnobs):
    """What a deployer sets for every service (not the web client)."""

    service_name: str = "service"
    """The service's own name (each service sets its default; not for a deployment to
    change): its database's name unless MONGO_DB says otherwise."""
    mongo_url: str = "mongodb://127.0.0.1:27017"
    """The service's own MongoDB (a replica set in a cluster: `...?replicaSet=rs0`)."""
    mongo_db: str = ""
    """The service's database in it; unset: the service's name."""
    nats_url: str = "nats://127.0.0.1:4222"
    """The NATS JetStream server (or cluster) events travel through."""
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    """How many servers of a JetStream cluster keep each stream: 1 on a single server, 3 on
    the production cluster (a stream then survives the loss of a server)."""
    # All of them together must fit the server's JetStream store (max_file_store: 4G in the
    # deployment and the local stack), which refuses a stream that would not; see
    # bus/streams.py, whose DEFAULT_MAX_BYTES these are (not imported: the bus package imports
    # the settings).
    nats_max_bytes_users: ByteSize = Field(default=ByteSize(128 * MiB), gt=0)
    """The USERS stream's byte limit (bytes, or `512MiB`): a stream at its limit refuses new
    messages, which wait in the outbox until its consumers catch up."""
    nats_max_bytes_tickets: ByteSize = Field(default=ByteSize(512 * MiB), gt=0)
    """The TICKETS stream's byte limit (as NATS_MAX_BYTES_USERS)."""
    nats_max_bytes_orders: ByteSize = Field(default=ByteSize(1024 * MiB), gt=0)
    """The ORDERS stream's byte limit (as NATS_MAX_BYTES_USERS)."""
    nats_max_bytes_expiration: ByteSize = Field(default=ByteSize(256 * MiB), gt=0)
    """The EXPIRATION stream's byte limit (as NATS_MAX_BYTES_USERS)."""
    nats_max_bytes_payments: ByteSize = Field(default=ByteSize(512 * MiB), gt=0)
    """The PAYMENTS stream's byte limit (as NATS_MAX_BYTES_USERS)."""
    nats_max_bytes_deadletter: ByteSize = Field(default=ByteSize(640 * MiB), gt=0)
    """The DEADLETTER stream's byte limit (as NATS_MAX_BYTES_USERS)."""
    jwt_key: SecretStr | None = None
    """The key that signs and verifies session tokens (HS256, 32 bytes at least; the same in
    every service). Required outside development."""
    jwt_ttl_seconds: int = 60 * 60 * 24
    """How long a session lasts."""
    traces_dir: str = ""
    """A folder: every span also goes there as a JSON line, `<service>.jsonl` (`make up` sets
    .devstack/traces; `make trace ORDER=<id>` reads it). Unset: none."""


class ServiceTuning(Tuning):
    """How every service runs; safe defaults."""

    # How long an operation waits for an unreachable Mongo before it fails (and the event
    # waits, or the request is a 503).
    mongo_timeout_seconds: float = 3.0
    # Count every command sent to Mongo and answer them at GET /debug/mongo-commands
    # (`make bench` turns it on). Off: no listener, no route.
    mongo_count_commands: bool = False
    # How long JetStream waits for an ack (or a progress signal: the bus sends one every third
    # of it while a handler runs) before it redelivers to another process.
    nats_ack_wait_seconds: float = Field(default=30.0, gt=0)
    # Failed deliveries (a handler bug, undecodable bytes) before an event is dead-lettered
    # (flaw 3: the old app redelivered failures forever). Only poison counts: an unreachable
    # dependency holds the event without using up deliveries, and an event that came too early
    # (RetryLater) is bounded by the horizon below instead.
    nats_max_deliver: int = Field(default=20, ge=1)
    # First delay before a failed or out-of-order event is offered again; doubles each time, up
    # to 30 s.
    nats_retry_delay_seconds: float = Field(default=0.5, gt=0)
    # How long an event that keeps coming too early (RetryLater: its predecessor is not there)
    # is offered again before it is dead-lettered for an operator to look at.
    nats_retry_horizon_seconds: float = Field(default=3600.0, gt=0)
    # Deliveries each consumer handles at once: different records in parallel, one record's
    # events one at a time in order (so a burst does not queue behind one Mongo round trip).
    nats_concurrency: int = Field(default=16, ge=1, le=256)
    # The services' own access log (one JSON line per request); off by default: the ingress (and
    # the local gateway) log every request already, and it costs a cheap request dearly
    # (BENCHMARKS.md, "Between 1eddfd6 and PREVIOUS").
    access_log: bool = False
    # Outbox relay sweep: picks up events whose immediate publish did not happen (NATS down,
    # process crashed between the write and the publish).
    outbox_sweep_seconds: float = 1.0
    # The largest request body; the Ingress's proxy-body-size is the same (a deployment check).
    max_body_bytes: int = 64 * 1024
    # Requests a process serves at once (HTTP_CONCURRENCY; 0: no limit); the others wait in
    # line, up to HTTP_QUEUE of them, beyond which a request is refused with a 503 and
    # Retry-After (see `limits.ConcurrencyLimit`: why a rush must not crowd out the process's
    # event consumers and outbox relay). The probes and /metrics never wait.
    http_concurrency: int = Field(default=8, ge=0)
    http_queue: int = Field(default=1000, ge=0)


class ServiceSettings(ServiceTuning, ServiceKnobs):
    """What every service needs. Services subclass this with their own knobs and tuning."""

    @property
    def nats_stream_max_bytes(self) -> dict[str, int]:
        """The streams' byte limits, by stream name."""
        names = ("USERS", "TICKETS", "ORDERS", "EXPIRATION", "PAYMENTS", "DEADLETTER")
        return {name: int(getattr(self, f"nats_max_bytes_{name.lower()}")) for name in names}

    @field_validator("mongo_db")
    @classmethod
    def _database_named_after_the_service(cls, value: str, info: ValidationInfo) -> str:
        # Defaults are validated too (pydantic-settings' validate_default), and `service_name`
        # comes first, so an unset MONGO_DB becomes the service's own database.
        return value or str(info.data.get("service_name", ""))

    @model_validator(mode="after")
    def _retries_outlast_a_lost_delivery(self) -> ServiceSettings:
        # A delivery lost with a crashed process comes back only after ack_wait; an event that
        # waits for it (the next version, deferred with RetryLater) must still be offered then,
        # or it is dead-lettered and the replica is stuck one version behind. Poison is not
        # concerned: what fails because a dependency is down is held, not counted.
        if self.nats_retry_horizon_seconds <= 2 * self.nats_ack_wait_seconds:
            raise ValueError(
                "NATS_RETRY_HORIZON_SECONDS must be more than twice NATS_ACK_WAIT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _secrets_required_outside_development(self) -> ServiceSettings:
        if self.jwt_key is None and self.environment != "development":
            raise ValueError("JWT_KEY must be set outside local development")
        key_bytes = len(self.jwt_secret.encode())
        if self.environment != "development" and key_bytes < MIN_JWT_KEY_BYTES:
            # RFC 7518 3.2: an HS256 key must be at least as long as the hash (256 bits); a
            # short one can be brute-forced offline from any session cookie.
            raise ValueError(
                f"JWT_KEY must be at least {MIN_JWT_KEY_BYTES} bytes (it is {key_bytes}); make "
                "one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return self

    @property
    def jwt_secret(self) -> str:
        # Unset only in development (the validator refuses it anywhere else): the public key.
        return self.jwt_key.get_secret_value() if self.jwt_key is not None else DEV_JWT_KEY


# --- knobs and tuning that more than one service reads (one field each) --------------------------


class RedisKnobs(Knobs):
    """Redis, for the services that use one (auth, expiration)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """The service's Redis, with its password (`redis://:PASSWORD@redis:6379/0`): auth counts
    its rate limits there (`memory://`: in the process, one replica only), expiration keeps its
    expiry jobs there (the service and its worker the same)."""


class ExpiryGraceKnobs(Knobs):
    """When an order's time is up, for the two services that act on it (orders, expiration)."""

    # A buyer may pay up to expiresAt, and the payment:created of a payment accepted at the
    # last moment must be decided before the expiry is: the grace lets it get there first.
    expiry_grace_seconds: NonNegativeFloat = 5.0
    """How long after an order's expiresAt it is over: expiration fires its expiry then, and
    orders drops a reservation nobody confirmed."""


class ExpirySweepTuning(Tuning):
    """How often the sweeps of overdue orders run (orders' and payments')."""

    # Orders sweeps for reservations nobody confirmed, payments for the windows of overdue
    # orders whose expiry event never came: each process its own sweep, this often.
    expiry_sweep_seconds: float = Field(default=1.0, gt=0)
