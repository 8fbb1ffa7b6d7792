"""The event bus: a JetStream implementation and an in-memory fake with the same behaviour."""

from ticketing_common.bus.base import Bus, DeadLetter, Handler, RetryLater, durable_name
from ticketing_common.bus.jetstream import JetStreamBus
from ticketing_common.bus.memory import InMemoryBus

__all__ = [
    "Bus",
    "DeadLetter",
    "Handler",
    "InMemoryBus",
    "JetStreamBus",
    "RetryLater",
    "durable_name",
]
