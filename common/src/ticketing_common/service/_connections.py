"""The connections a service's process opens once at start-up: its Mongo and its bus."""

from __future__ import annotations

from typing import Any

from ticketing_common.bus import JetStreamBus
from ticketing_common.mongo import CommandCounter, Database, IndexSpec, connect, ensure_indexes
from ticketing_common.outbox import PENDING
from ticketing_common.settings import ServiceSettings


async def open_database(
    name: str,
    settings: ServiceSettings,
    *,
    mongo: Any,
    counter: CommandCounter | None,
    indexes: list[IndexSpec],
    outbox_collections: list[str],
) -> tuple[Any, Database]:
    """The process's Mongo client (`mongo`, the in-memory one tests pass, or one connected to
    MONGO_URL) and the service's database, with its indexes and its outboxes' created."""
    client = (
        mongo
        if mongo is not None
        else connect(
            settings.mongo_url,
            app_name=name,
            timeout=settings.mongo_timeout_seconds,
            listener=counter,
        )
    )
    db: Database = client[settings.mongo_db]
    # The relay's sweep looks for pending events every second, oldest first: indexed, not a
    # scan (nx-27017 gets the key without `_id`, see ensure_indexes).
    outbox_indexes = [IndexSpec(c, [(PENDING, 1), ("_id", 1)]) for c in outbox_collections]
    await ensure_indexes(db, [*indexes, *outbox_indexes])
    return client, db


def jetstream_bus(name: str, settings: ServiceSettings) -> JetStreamBus:
    """The service's bus on NATS JetStream, as its settings describe it."""
    return JetStreamBus(
        settings.nats_url,
        name,
        ack_wait=settings.nats_ack_wait_seconds,
        max_deliver=settings.nats_max_deliver,
        retry_delay=settings.nats_retry_delay_seconds,
        retry_horizon=settings.nats_retry_horizon_seconds,
        concurrency=settings.nats_concurrency,
        stream_replicas=settings.nats_stream_replicas,
        stream_max_bytes=settings.nats_stream_max_bytes,
        # The service itself: it subscribes to its entry of the consumers registry.
        contract=True,
    )
