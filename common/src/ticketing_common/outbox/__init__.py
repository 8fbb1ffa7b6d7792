"""Publishing that cannot lose an event: the transactional outbox, inside the document itself.

A write that implies events stores them in the same document, in the same single-document
write (`_outbox`), so the state change and its events exist together or not at all; no
transaction is needed, which matters because not every Mongo we run on isolates them.

Writes that carry events go through `Outbox` (one per process, bound to the database and the
relay): it adds the events to the write and, once the write succeeded, has the relay publish
them, so no caller can forget to. The relay then publishes them and removes them from the
document:
- right away, from the write that stored them (`OutboxRelay.kick`), so events reach other
  services in milliseconds;
- and on a sweep every second, which finds whatever is left: NATS was down, the publish timed
  out, or the process died between the write and the publish.
An event may therefore be published more than once; JetStream drops repeats of an id within its
de-duplication window, and every handler is idempotent for the rest.

The sweep goes through pending documents oldest first (by `_id`), a batch at a time, continuing
after the last document it saw and wrapping around at the end: a document whose events cannot go
out does not keep the others from their turn. When the bus is down it stops early (every publish
would fail) and carries on from there next time.

A stream full (`PublishRefused`: a consumer is down or behind by its stream's max_bytes) is a
dependency down too, never a reason to set an event aside: the entry stays in its document,
the sweep leaves that collection for this turn (its next documents would most likely be
refused the same) and tries again a second later, so the events go out, in order, as soon as
the stream has room.

An entry the bus refuses while it is healthy (not a valid event, a subject no stream holds, too
large: anything but BusUnavailable or another infrastructure failure) can never be published as
it is. It is moved aside, into the `outbox_aside` collection (with its document, error and time;
logged at error), so it blocks neither its document's later events nor the sweep.
`python -m ticketing_common.admin outbox-aside` lists those entries and requeues one.

The rooms of the package (all private; this face is what the rest of the house imports):
- `_writes`: the document's outbox fields and the writes that fill them (`Outbox`,
  `OutboxCollection`, `with_outbox`, `outbox_fields`, `strip_outbox`);
- `_relay`: `OutboxRelay`, which publishes them (the kick and the sweep);
- `_clearing`: the clear window, in which outboxes that went out together are emptied by one
  write;
- `_aside`: the entries set aside, and the operator's side of them (`list_aside`,
  `requeue_aside`);
- `_backlog`: what is pending, as the metrics scrape reads it (`OutboxRelay.backlog`).
"""

from ticketing_common.outbox._aside import AsideEntry, list_aside, requeue_aside
from ticketing_common.outbox._relay import OutboxRelay
from ticketing_common.outbox._writes import (
    OUTBOX,
    PENDING,
    Outbox,
    OutboxCollection,
    Outboxed,
    outbox_fields,
    strip_outbox,
    with_outbox,
)

__all__ = [
    "OUTBOX",
    "PENDING",
    "AsideEntry",
    "Outbox",
    "OutboxCollection",
    "OutboxRelay",
    "Outboxed",
    "list_aside",
    "outbox_fields",
    "requeue_aside",
    "strip_outbox",
    "with_outbox",
]
