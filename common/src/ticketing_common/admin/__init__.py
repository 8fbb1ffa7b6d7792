"""Operator command: see dead letters and send them back once their cause is fixed.

    python -m ticketing_common.admin list [--consumer DURABLE] [--service NAME]
    python -m ticketing_common.admin show SEQ
    python -m ticketing_common.admin redrive SEQ [SEQ ...]
    python -m ticketing_common.admin redrive --consumer DURABLE --all
    python -m ticketing_common.admin outbox-aside --mongo-url URL --db NAME [--requeue ID]

The NATS URL comes from `--nats-url`, else NATS_URL, else nats://127.0.0.1:4222. A dead letter
is named by its sequence in the DEADLETTER stream (the first column of `list`). `redrive` sends
it back to the one durable consumer that dead-lettered it (the other services consuming the same
subject do not see it again), once however often it is asked, and removes it from the dead
letters; see the bus on JetStream (`ticketing_common.bus.jetstream`, its dead letters) for how.

`outbox-aside` lists the outbox entries a service could not publish on a healthy bus (they are
kept in the service's database, collection `outbox_aside`, not on NATS, see
`ticketing_common.outbox`); `--requeue ID` puts one back into its document's outbox so the relay
publishes it again (after the cause is fixed). Its Mongo URL comes from `--mongo-url`, else
MONGO_URL.

Exit status: 0 done, 1 a named dead letter or entry does not exist (any more), 2 bad usage,
3 NATS cannot be reached.

The rooms (private): `_cli` (the options and the dispatch), `_dead_letters` (the sub-commands on
NATS), `_outbox_aside` (the one on a service's Mongo); `__main__` runs `main`.
"""

from ticketing_common.admin._cli import main
from ticketing_common.admin._dead_letters import list_dead_letters, redrive, redrive_all, show

__all__ = ["list_dead_letters", "main", "redrive", "redrive_all", "show"]
