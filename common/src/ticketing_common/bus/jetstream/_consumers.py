"""The server side of the bus: streams and durable consumers, declared and reconciled.

Consumer config is reconciled on every (re)subscribe: a durable that exists keeps the config it
was created with, so a changed setting (ack_wait, a lower max_deliver left by an older version)
would otherwise be silently ignored, and with it events lost. Editable fields
are updated in place (a create request on an existing durable is an update); a field JetStream
cannot change in place (deliver or ack policy) is logged at error and the bus runs with the
server's actual values (`ServerConsumer`), which is also what it decides dead letters from.

The server-side `max_deliver` is unlimited (-1): the bus counts failures itself and dead-letters
poison after NATS_MAX_DELIVER failed deliveries, while RetryLater deferrals (bounded by the retry
horizon) and infrastructure failures (held, never counted) do not use up deliveries; see
`policy`. Each durable also filters on its own re-drive subject (`streams.redrive_subject`).

Streams are bounded by bytes with interest retention (see `streams`): on connecting, before
anything is published, every bus creates the contract's durables that are missing
(`streams.CONSUMERS`), and a service running as itself first deletes its own durables that its
entry no longer names (`drop_stale_durables`), unless a process still consumes them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from ticketing_common.bus.jetstream._errors import STORE_FULL_CODES
from ticketing_common.bus.policy import UNLIMITED
from ticketing_common.bus.streams import (
    CONSUMERS,
    STREAMS,
    StreamSpec,
    durable_name,
    redrive_subject,
    stream_for,
)
from ticketing_common.events import Subject

log = logging.getLogger("ticketing.bus")

# 10148: a create-only request for a consumer that exists (with another config).
CONSUMER_EXISTS = 10148
MAX_ACK_PENDING = 1000


@dataclass(frozen=True)
class ServerConsumer:
    """What the server actually applies to a durable (after reconciliation, or despite it)."""

    max_deliver: int
    ack_wait: float


def consumer_config(service: str, subject: Subject, *, ack_wait: float) -> ConsumerConfig:
    """The config of `service`'s durable on `subject`: what its own bus reconciles it to, and
    what another service's bus creates it with when it is missing."""
    durable = durable_name(service, subject)
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_deliver=UNLIMITED,
        filter_subjects=[subject.wire, redrive_subject(subject.wire, durable)],
        max_ack_pending=MAX_ACK_PENDING,
    )


def stream_config(spec: StreamSpec, *, replicas: int = 1) -> StreamConfig:
    """The server config of a declared stream, kept by `replicas` servers of the cluster."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        num_replicas=replicas,
        retention=RetentionPolicy(spec.retention),
        # A full stream refuses new messages (the outbox keeps them) rather than delete ones
        # not consumed yet: see streams.py.
        discard=DiscardPolicy.NEW,
        max_bytes=spec.max_bytes,
        max_age=spec.max_age_seconds,
        duplicate_window=spec.duplicate_window_seconds,
    )


async def ensure_consumer(
    js: JetStreamContext, service: str, subject: Subject, *, ack_wait: float
) -> ServerConsumer:
    """Create `service`'s durable on `subject`, or bring an existing one to this config;
    return what the server actually applies."""
    want = consumer_config(service, subject, ack_wait=ack_wait)
    durable = durable_name(service, subject)
    stream = stream_for(subject.wire)
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        info = await js.add_consumer(stream, want)
        return _server_values(info)
    drift = _drift(info.config, want)
    fixed = [f for f in drift if f in ("deliver_policy", "ack_policy")]
    if fixed:
        log.error(
            "consumer config cannot be updated in place; running with the server's",
            extra={
                "durable": durable,
                "fields": fixed,
                "hint": f"delete the consumer to recreate it: nats consumer rm {stream} "
                f"{durable} (it starts again from the first message)",
            },
        )
        return _server_values(info)
    if drift:
        log.warning(
            "consumer config differs from the settings, updating it",
            extra={"durable": durable, "fields": drift},
        )
        try:
            info = await js.add_consumer(stream, want)  # on an existing durable: an update
        except nats.js.errors.APIError as exc:
            log.error(
                "consumer config update refused; running with the server's",
                extra={"durable": durable, "fields": drift, "error": repr(exc)},
            )
    return _server_values(info)


async def drop_stale_durables(
    js: JetStreamContext, service: str, consumers: Mapping[str, tuple[Subject, ...]]
) -> bool:
    """Delete `service`'s durables that its entry in `consumers` no longer names: one left by
    the previous version (orders' expiration:complete) would keep interest in every such
    message, and its stream would fill up. Whether one was left because it is still in use.

    Not while a process still consumes it (pulls waiting, messages being handled): during a
    rolling upgrade the old version's pods do, and a durable deleted under them would be
    made again by them, from the first message. The bus looks at such a one again later.
    """
    left = False
    wanted = set(consumers.get(service, ()))
    for subject in Subject:
        if subject in wanted:
            continue
        durable = durable_name(service, subject)
        stream = stream_for(subject.wire)
        try:
            info = await js.consumer_info(stream, durable)
            if (info.num_waiting or 0) > 0 or (info.num_ack_pending or 0) > 0:
                left = True
                log.warning(
                    "a durable this service no longer consumes is still in use (an older "
                    "version's pods?): left for now",
                    extra={"durable": durable, "stream": stream},
                )
                continue
            await js.delete_consumer(stream, durable)
        except nats.js.errors.NotFoundError:
            continue
        log.warning(
            "deleted a durable this service no longer consumes",
            extra={"durable": durable, "stream": stream},
        )
    return left


def _server_values(info: ConsumerInfo) -> ServerConsumer:
    config = info.config
    return ServerConsumer(
        max_deliver=config.max_deliver if config.max_deliver else UNLIMITED,
        ack_wait=config.ack_wait or 30.0,
    )


def _drift(actual: ConsumerConfig, want: ConsumerConfig) -> list[str]:
    """The fields of `want` that the server's `actual` config does not match."""
    fields: list[str] = []
    actual_filters = actual.filter_subjects or (
        [actual.filter_subject] if actual.filter_subject else []
    )
    if sorted(actual_filters) != sorted(want.filter_subjects or []):
        fields.append("filter_subjects")
    if (actual.max_deliver or UNLIMITED) != want.max_deliver:
        fields.append("max_deliver")
    if abs((actual.ack_wait or 0.0) - (want.ack_wait or 0.0)) > 1e-3:
        fields.append("ack_wait")
    if actual.max_ack_pending != want.max_ack_pending:
        fields.append("max_ack_pending")
    # The server's answer holds plain strings, the wanted config enums ("all" vs ALL).
    if _value(actual.deliver_policy) != _value(want.deliver_policy):
        fields.append("deliver_policy")
    if _value(actual.ack_policy) != _value(want.ack_policy):
        fields.append("ack_policy")
    return fields


def _value(field: Enum | str | None) -> object:
    return field.value if isinstance(field, Enum) else field


async def create_missing_consumers(
    js: JetStreamContext,
    consumers: Mapping[str, tuple[Subject, ...]] = CONSUMERS,
    *,
    ack_wait: float = 30.0,
) -> None:
    """Create every durable of the contract that does not exist yet, as its owner would.

    Create only: a durable that exists is its owner's, who reconciles it with its own settings
    (`ensure_consumer`); so the request says "create" (JetStream's create action), and one that
    appeared meanwhile with another config is left as it is rather than updated to ours."""
    for service, subjects in consumers.items():
        for subject in subjects:
            durable = durable_name(service, subject)
            stream = stream_for(subject.wire)
            try:
                await js.consumer_info(stream, durable)
                continue
            except nats.js.errors.NotFoundError:
                pass
            config = consumer_config(service, subject, ack_wait=ack_wait)
            request = {"stream_name": stream, "config": config.as_dict(), "action": "create"}
            try:
                await js._api_request(
                    f"{js._prefix}.CONSUMER.CREATE.{stream}.{durable}",
                    json.dumps(request).encode(),
                    timeout=js._timeout,
                )
            except nats.js.errors.APIError as exc:
                if exc.err_code != CONSUMER_EXISTS:
                    raise
                continue
            log.info("created a durable of the contract", extra={"durable": durable})


async def declare_streams(
    js: JetStreamContext,
    *,
    replicas: int = 1,
    specs: tuple[StreamSpec, ...] = STREAMS,
    consumers: Mapping[str, tuple[Subject, ...]] = CONSUMERS,
    ack_wait: float = 30.0,
) -> None:
    """Declare the streams and create the contract's missing durables.

    In that order for a stream that existed with other settings: its durables are created
    before it is updated, so when an older limits stream becomes an interest one (nats-server
    2.10 and later change retention in place) its messages are kept for every durable of the
    contract, not only for those that had been created already."""
    existing: list[StreamConfig] = []
    for spec in specs:
        config = stream_config(spec, replicas=replicas)
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            existing.append(config)  # exists with other settings: updated below
        except nats.js.errors.APIError as exc:
            if exc.err_code in STORE_FULL_CODES:
                log.error(
                    "stream does not fit the JetStream store",
                    extra={"stream": spec.name, "max_bytes": spec.max_bytes, **_store_hint(specs)},
                )
            raise
    await create_missing_consumers(js, consumers, ack_wait=ack_wait)
    for config in existing:
        try:
            await js.update_stream(config)
        except nats.js.errors.APIError as exc:
            # The bus still works on the stream as it is; an operator must act.
            log.error(
                "stream config update refused; running with the server's",
                extra={
                    "stream": config.name,
                    "error": f"{exc.description} ({exc.err_code})",
                    "hint": "max_bytes: the NATS_MAX_BYTES_* settings together must fit the "
                    "server's max_file_store; retention: nats-server 2.10 or later changes "
                    "it in place, an older one cannot: upgrade, or once every consumer has "
                    f"caught up, `nats stream rm {config.name}` and restart a service "
                    "(it declares the stream again)",
                    **(_store_hint(specs) if exc.err_code in STORE_FULL_CODES else {}),
                },
            )


def _store_hint(specs: tuple[StreamSpec, ...]) -> dict[str, str | int]:
    total = sum(s.max_bytes for s in specs)
    return {
        "streams_max_bytes": total,
        "hint": f"the streams' max_bytes ({total} bytes together, NATS_MAX_BYTES_*) must fit "
        "the server's jetstream max_file_store (the deployment's is 4G)",
    }
