"""Operator command: see dead letters and send them back once their cause is fixed.

    python -m ticketing_common.deadletters list [--consumer DURABLE] [--service NAME]
    python -m ticketing_common.deadletters show SEQ
    python -m ticketing_common.deadletters redrive SEQ [SEQ ...]
    python -m ticketing_common.deadletters redrive --consumer DURABLE --all
    python -m ticketing_common.deadletters outbox-aside --mongo-url URL --db NAME [--requeue ID]

The NATS URL comes from `--nats-url`, else NATS_URL, else nats://127.0.0.1:4222. A dead letter
is named by its sequence in the DEADLETTER stream (the first column of `list`). `redrive` sends
it back to the one durable consumer that dead-lettered it (the other services consuming the same
subject do not see it again), once however often it is asked, and removes it from the dead
letters; see `ticketing_common.bus.deadletters` for how.

`outbox-aside` lists the outbox entries a service could not publish on a healthy bus (they are
kept in the service's database, collection `outbox_aside`, not on NATS, see
`ticketing_common.outbox`); `--requeue ID` puts one back into its document's outbox so the relay
publishes it again (after the cause is fixed). Its Mongo URL comes from `--mongo-url`, else
MONGO_URL.

Exit status: 0 done, 1 a named dead letter or entry does not exist (any more), 2 bad usage,
3 NATS cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any, TextIO

import nats
import nats.errors
from nats.js import JetStreamContext

from ticketing_common.bus import deadletters
from ticketing_common.bus.base import DeadLetter

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_MONGO_URL = "mongodb://127.0.0.1:27017"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ticketing_common.deadletters",
        description="List, show and re-drive dead letters; list outbox entries set aside.",
    )
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL", DEFAULT_NATS_URL),
        help="NATS server (default: $NATS_URL or %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    # Also accepted after the command (`list --nats-url ...`), overriding the one before it.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--nats-url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    listing = commands.add_parser("list", parents=[after], help="list dead letters, oldest first")
    listing.add_argument("--consumer", help="only this durable consumer's (orders-ticket-created)")
    listing.add_argument("--service", help="only this service's (orders)")

    show = commands.add_parser("show", parents=[after], help="one dead letter with its payload")
    show.add_argument("seq", type=int, help="its sequence in the DEADLETTER stream")

    redrive = commands.add_parser(
        "redrive", parents=[after], help="send dead letters back to their consumer"
    )
    redrive.add_argument("seqs", type=int, nargs="*", metavar="SEQ")
    redrive.add_argument("--consumer", help="with --all: this durable consumer's dead letters")
    redrive.add_argument("--all", action="store_true", help="every dead letter of --consumer")

    aside = commands.add_parser("outbox-aside", help="outbox entries that could not be published")
    aside.add_argument(
        "--mongo-url",
        default=os.environ.get("MONGO_URL", DEFAULT_MONGO_URL),
        help="the service's Mongo (default: $MONGO_URL or %(default)s)",
    )
    aside.add_argument("--db", required=True, help="the service's database (tickets)")
    aside.add_argument("--requeue", metavar="ID", help="put this entry back into its outbox")
    return parser


def format_row(letter: DeadLetter) -> str:
    return "  ".join(
        [
            f"{letter.seq:>6}",
            letter.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"{letter.durable:<32}",
            f"{letter.subject:<20}",
            f"{letter.deliveries:>10}",
            letter.error,
        ]
    )


HEADER = "  ".join(
    [
        "   SEQ",
        "TIME                ",
        f"{'CONSUMER':<32}",
        f"{'SUBJECT':<20}",
        "DELIVERIES",
        "ERROR",
    ]
)


def format_payload(payload: bytes) -> str:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return repr(payload)  # not JSON (often why it was dead-lettered): the bytes as they are


async def list_dead_letters(
    js: JetStreamContext, *, consumer: str | None = None, service: str | None = None
) -> list[DeadLetter]:
    return await deadletters.read(js, service=service, consumer=consumer)


async def show(js: JetStreamContext, seq: int) -> DeadLetter | None:
    return await deadletters.get(js, seq)


async def redrive(js: JetStreamContext, seq: int) -> DeadLetter | None:
    """Send one dead letter back to its consumer; None if there is no such dead letter."""
    return await deadletters.redrive(js, seq)


async def redrive_all(js: JetStreamContext, consumer: str) -> list[DeadLetter]:
    """Send every dead letter of `consumer` back to it, oldest first."""
    sent: list[DeadLetter] = []
    for letter in await deadletters.read(js, consumer=consumer):
        redriven = await deadletters.redrive(js, letter.seq)
        if redriven is not None:
            sent.append(redriven)
    return sent


async def _run_nats(args: argparse.Namespace, out: TextIO) -> int:
    async def quiet(exc: Exception) -> None:
        """nats-py's default prints a traceback per attempt; the failure is reported once."""

    nc = await nats.connect(
        args.nats_url,
        connect_timeout=5,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        error_cb=quiet,
    )
    try:
        js = nc.jetstream(timeout=5)
        if args.command == "list":
            letters = await list_dead_letters(js, consumer=args.consumer, service=args.service)
            print(HEADER, file=out)
            for letter in letters:
                print(format_row(letter), file=out)
            print(f"{len(letters)} dead letter(s)", file=out)
            return 0
        if args.command == "show":
            found = await show(js, args.seq)
            if found is None:
                print(f"no dead letter {args.seq}", file=out)
                return 1
            for name, value in (
                ("seq", found.seq),
                ("time", found.at.isoformat()),
                ("service", found.service),
                ("consumer", found.durable),
                ("subject", found.subject),
                ("stream seq", found.stream_seq),
                ("deliveries", found.deliveries),
                ("error", found.error),
            ):
                print(f"{name + ':':<12}{value}", file=out)
            print("payload:", file=out)
            print(format_payload(found.payload), file=out)
            return 0
        # redrive
        if args.all:
            if not args.consumer or args.seqs:
                print("redrive --all needs --consumer and no SEQ", file=sys.stderr)
                return 2
            sent = await redrive_all(js, args.consumer)
            for letter in sent:
                print(f"re-driven {letter.seq} to {letter.durable} ({letter.subject})", file=out)
            print(f"{len(sent)} dead letter(s) re-driven", file=out)
            return 0
        if not args.seqs or args.consumer:
            print("redrive takes SEQ ..., or --consumer NAME --all", file=sys.stderr)
            return 2
        status = 0
        for seq in args.seqs:
            redriven = await redrive(js, seq)
            if redriven is None:
                print(f"no dead letter {seq} (already re-driven?)", file=out)
                status = 1
            else:
                print(f"re-driven {seq} to {redriven.durable} ({redriven.subject})", file=out)
        return status
    finally:
        await nc.close()


async def _run_outbox_aside(args: argparse.Namespace, out: TextIO) -> int:
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
            print(
                "  ".join(
                    [
                        str(entry["_id"]),
                        entry["at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                        str(entry["collection"]),
                        str(entry["documentId"]),
                        str(entry["error"]),
                    ]
                ),
                file=out,
            )
        print(
            f"{len(entries)} outbox entr{'y' if len(entries) == 1 else 'ies'} set aside", file=out
        )
        return 0
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    if args.command == "outbox-aside":
        return asyncio.run(_run_outbox_aside(args, stream))
    try:
        return asyncio.run(_run_nats(args, stream))
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        # The host only: a URL may carry credentials (nats://user:pass@host).
        host = urllib.parse.urlsplit(args.nats_url).hostname
        print(f"NATS at {host}: {exc!r}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
