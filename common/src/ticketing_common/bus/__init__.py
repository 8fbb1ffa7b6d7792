"""The event bus: a JetStream implementation and an in-memory fake with the same behaviour.

Public: this face (what services, the client, tools and the rest of common import), and the
modules `contract` (what a handler and a publisher deal with), `policy` (the retry rules),
`streams` (the topology: streams, the consumers' registry, subjects), `memory` (the fake) and
`jetstream` (the real bus). The modules with a leading underscore are the machinery both buses
share: `_core` (what a bus holds), `_dispatcher` (the delivery loop), `_lanes` (a consumer's
deliveries at once, each record's in order), `_observe` (spans and metrics), `_memory_broker`
(the fake's server).
"""

from ticketing_common.bus.contract import (
    Bus,
    BusUnavailable,
    DeadLetter,
    Dependency,
    DependencyUnavailable,
    Handler,
    OperatorBus,
    PublishRefused,
    RetryLater,
    Unpublishable,
    dependency_of,
    is_infrastructure_failure,
)
from ticketing_common.bus.jetstream import JetStreamBus
from ticketing_common.bus.memory import InMemoryBroker, InMemoryBus
from ticketing_common.bus.policy import RetryPolicy
from ticketing_common.bus.streams import durable_name, stream_for

__all__ = [
    "Bus",
    "BusUnavailable",
    "DeadLetter",
    "Dependency",
    "DependencyUnavailable",
    "Handler",
    "InMemoryBroker",
    "InMemoryBus",
    "JetStreamBus",
    "OperatorBus",
    "PublishRefused",
    "RetryLater",
    "RetryPolicy",
    "Unpublishable",
    "dependency_of",
    "durable_name",
    "is_infrastructure_failure",
    "stream_for",
]
