"""The admin command's options, and the dispatch of each sub-command to the side it works on:
NATS (the dead letters) or a service's Mongo (the outbox entries set aside)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import urllib.parse
from collections.abc import Sequence
from typing import TextIO

import nats.errors

from ticketing_common.admin import _dead_letters, _outbox_aside

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_MONGO_URL = "mongodb://127.0.0.1:27017"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ticketing_common.admin",
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


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command `argv` (default: the process's arguments), printing to `out` (default:
    stdout); returns the exit status."""
    args = _parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    if args.command == "outbox-aside":
        return asyncio.run(_outbox_aside.run(args, stream))
    try:
        return asyncio.run(_dead_letters.run(args, stream))
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        # The host only: a URL may carry credentials (nats://user:pass@host).
        host = urllib.parse.urlsplit(args.nats_url).hostname
        print(f"NATS at {host}: {exc!r}", file=sys.stderr)
        return 3
