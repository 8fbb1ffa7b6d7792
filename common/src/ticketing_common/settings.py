"""Service settings, read from environment variables.

Settings are never built at import time: each service exposes a cached factory
(`functools.cache`) so tests can build their own instance and production builds exactly one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ByteSize, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Only ever used when ENVIRONMENT=development (the default for a laptop); any other environment
# must supply JWT_KEY, so this value cannot sign a production session.
DEV_JWT_KEY = "dev-only-insecure-jwt-key-change-me-0123456789"
MIN_JWT_KEY_BYTES = 32
MiB = 1024 * 1024


class ServiceSettings(BaseSettings):
    """What every service needs. Services subclass this and add their own fields."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    service_name: str = "service"
    # Fail closed: a deployment that forgets ENVIRONMENT is production, so it cannot fall back
    # to the public development JWT key. `make up` and the tests say what they are.
    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"

    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = ""
    # How long an operation waits for an unreachable Mongo before it fails (and the event
    # waits, or the request is a 503); MONGO_TIMEOUT_SECONDS.
    mongo_timeout_seconds: float = 3.0
    # Count every command sent to Mongo and answer them at GET /debug/mongo-commands
    # (MONGO_COUNT_COMMANDS; `make bench` turns it on). Off: no listener, no route.
    mongo_count_commands: bool = False

    nats_url: str = "nats://127.0.0.1:4222"
    # How many servers of a JetStream cluster keep each stream (NATS_STREAM_REPLICAS): 1 on a
    # single server, 3 on the production cluster (a stream then survives the loss of a server).
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
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
    # Each stream's byte limit (NATS_MAX_BYTES_<STREAM>: bytes, or "512MiB"): a stream at its
    # limit refuses new messages (the outbox keeps them) until its consumers catch up. All of
    # them together must fit the server's JetStream store (max_file_store: 4G in the deployment
    # and the local stack), which refuses a stream that would not; see bus/streams.py, whose
    # DEFAULT_MAX_BYTES these are (not imported: the bus package imports the settings).
    nats_max_bytes_users: ByteSize = Field(default=ByteSize(128 * MiB), gt=0)
    nats_max_bytes_tickets: ByteSize = Field(default=ByteSize(512 * MiB), gt=0)
    nats_max_bytes_orders: ByteSize = Field(default=ByteSize(1024 * MiB), gt=0)
    nats_max_bytes_expiration: ByteSize = Field(default=ByteSize(256 * MiB), gt=0)
    nats_max_bytes_payments: ByteSize = Field(default=ByteSize(512 * MiB), gt=0)
    nats_max_bytes_deadletter: ByteSize = Field(default=ByteSize(640 * MiB), gt=0)

    jwt_key: SecretStr | None = None
    jwt_ttl_seconds: int = 60 * 60 * 24
    cookie_secure: bool = True
    cookie_name: str = "session"
    # The services' own access log (one JSON line per request); off by default: the ingress (and
    # the local gateway) log every request already, and it cost ~13% of a cheap request.
    access_log: bool = False

    # Outbox relay sweep: picks up events whose immediate publish did not happen (NATS down,
    # process crashed between the write and the publish).
    outbox_sweep_seconds: float = 1.0

    max_body_bytes: int = 64 * 1024
    # Requests a process serves at once (HTTP_CONCURRENCY; 0: no limit); the others wait in
    # line, up to HTTP_QUEUE of them, beyond which a request is refused with a 503 and
    # Retry-After (see `limits.ConcurrencyLimit`: why a rush must not crowd out the process's
    # event consumers and outbox relay). The probes and /metrics never wait.
    http_concurrency: int = Field(default=8, ge=0)
    http_queue: int = Field(default=1000, ge=0)

    # Telemetry (see `ticketing_common.telemetry`). OTEL_SDK_DISABLED=true turns tracing off
    # altogether (no spans, no trace context passed on); metrics stay on.
    otel_sdk_disabled: bool = False
    # An OTLP/HTTP collector (http://otel-collector:4318): spans are exported there.
    otel_exporter_otlp_endpoint: str = ""
    # The share of new traces kept; a trace continued from a parent keeps its parent's choice.
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0.0, le=1.0)
    # A folder: every span also goes there as a JSON line, `<service>.jsonl` (the local stack
    # sets it to .devstack/traces; `make trace ORDER=<id>` reads it).
    traces_dir: str = ""
    # The proxies whose X-Forwarded-For (and -Proto) a service believes: addresses or networks,
    # comma-separated (FORWARDED_ALLOW_IPS, the variable and default uvicorn reads too). The
    # client's address is the first one, from the right, that is not a trusted proxy; anything
    # further left was written by the client itself. In Kubernetes, the pods' network (the
    # ingress controller and the web client call the services from it).
    forwarded_allow_ips: str = "127.0.0.1,::1"

    @property
    def nats_stream_max_bytes(self) -> dict[str, int]:
        """The streams' byte limits, by stream name."""
        names = ("USERS", "TICKETS", "ORDERS", "EXPIRATION", "PAYMENTS", "DEADLETTER")
        return {name: int(getattr(self, f"nats_max_bytes_{name.lower()}")) for name in names}

    @property
    def nats_retry_budget_seconds(self) -> float:
        """How long a failing (poison) event keeps being offered before it is dead-lettered."""
        from ticketing_common.bus.base import RetryPolicy

        policy = RetryPolicy(
            max_deliver=self.nats_max_deliver, retry_delay=self.nats_retry_delay_seconds
        )
        return policy.waited(self.nats_max_deliver)

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
