"""`outbox-aside`: the outbox entries a service set aside (its Mongo, collection `outbox_aside`),
listed, or one put back into its document's outbox (`--requeue ID`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ticketing_common.outbox import AsideEntry


async def run(args: argparse.Namespace, out: TextIO) -> int:
    """The sub-command on the service's Mongo (`--mongo-url`, `--db`); returns the exit status."""
    # Here, not at the top: the sub-commands on NATS need neither Mongo nor the outbox.
    from pymongo import AsyncMongoClient

    from ticketing_common.outbox import list_aside, requeue_aside

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        args.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    try:
        db = client[args.db]
        if args.requeue:
            if not await requeue_aside(db, args.requeue):
                print(f"no outbox entry {args.requeue} set aside", file=out)
                return 1
            print(f"requeued {args.requeue}", file=out)
            return 0
        entries = await list_aside(db)
        for entry in entries:
            print(_format_entry(entry), file=out)
        print(
            f"{len(entries)} outbox entr{'y' if len(entries) == 1 else 'ies'} set aside", file=out
        )
        return 0
    finally:
        await client.close()


def _format_entry(entry: AsideEntry) -> str:
    return "  ".join(
        [
            str(entry["_id"]),
            entry["at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            str(entry["collection"]),
            str(entry["documentId"]),
            str(entry["error"]),
        ]
    )
