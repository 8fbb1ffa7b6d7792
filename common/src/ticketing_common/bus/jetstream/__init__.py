"""The bus on NATS JetStream: `JetStreamBus`, and what tools and the operator command use of it.

The bus itself (`_carrier`: connection, publishing, consuming), its standing pull requests
(`_pull`), the streams and durables on the server (`_consumers`: declared, created when missing,
reconciled), the dead letters in the DEADLETTER stream (`_dead_letters`: stored, read back,
re-driven), and what JetStream's errors mean (`_errors`).
"""

from ticketing_common.bus.jetstream._carrier import JetStreamBus
from ticketing_common.bus.jetstream._consumers import (
    ServerConsumer,
    consumer_config,
    create_missing_consumers,
    declare_streams,
    stream_config,
)
from ticketing_common.bus.jetstream._dead_letters import (
    get_dead_letter,
    read_dead_letters,
    redrive_dead_letter,
)

__all__ = [
    "JetStreamBus",
    "ServerConsumer",
    "consumer_config",
    "create_missing_consumers",
    "declare_streams",
    "get_dead_letter",
    "read_dead_letters",
    "redrive_dead_letter",
    "stream_config",
]
