"""The event bus: a JetStream implementation and an in-memory fake with the same behaviour."""

from ticketing_common.bus.base import (
    Bus,
    DeadLetter,
    Dependency,
    DependencyUnavailable,
    Handler,
    RetryLater,
    Unpublishable,
    dependency_of,
    durable_name,
    is_infrastructure_failure,
)
from ticketing_common.bus.jetstream import JetStreamBus
from ticketing_common.bus.memory import InMemoryBus

__all__ = [
    "Bus",
    "DeadLetter",
    "Dependency",
    "DependencyUnavailable",
    "Handler",
    "InMemoryBus",
    "JetStreamBus",
    "RetryLater",
    "Unpublishable",
    "dependency_of",
    "durable_name",
    "is_infrastructure_failure",
]
