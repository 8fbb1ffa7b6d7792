"""What nats-py's and JetStream's errors mean to the bus.

`NATS_ERRORS`: what a call over a lost or slow connection raises (the bus retries, or leaves a
message to be redelivered). `refusal`: the server's answer to a message it will not store for
lack of room, as the `PublishRefused` the outbox waits out.
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors

from ticketing_common.bus.contract import PublishRefused

NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, OSError, asyncio.TimeoutError)

# JetStream's error codes for a message (or a stream) refused for lack of room, found with the
# real server: 10077 is a store failure, "maximum bytes exceeded" for a discard-new stream at
# its max_bytes; 10023 "insufficient resources" when the server's store is full; 10047 and 10028
# when a stream's reservation does not fit the store (file, memory).
STREAM_STORE_FAILED = 10077
STORE_FULL_CODES = frozenset({10023, 10047, 10028})


def refusal(exc: nats.js.errors.APIError, stream: str) -> PublishRefused | None:
    """The server's answer as a refusal for lack of room, or None if it is something else."""
    description = exc.description or ""
    if exc.err_code == STREAM_STORE_FAILED and "exceeded" in description:
        reason = "stream_full"
    elif exc.err_code in STORE_FULL_CODES:
        reason = "store_full"
    else:
        return None
    return PublishRefused(
        f"{stream} refused the message: {description} ({exc.err_code})",
        stream=stream,
        reason=reason,
    )
