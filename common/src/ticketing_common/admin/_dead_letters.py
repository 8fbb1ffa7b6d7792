"""The sub-commands on NATS: `list`, `show` and `redrive` dead letters (the DEADLETTER stream),
and their text."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from ticketing_common.bus import DeadLetter
from ticketing_common.bus.jetstream import get_dead_letter, read_dead_letters, redrive_dead_letter

_HEADER = "  ".join(
    [
        "   SEQ",
        "TIME                ",
        f"{'CONSUMER':<32}",
        f"{'SUBJECT':<20}",
        "DELIVERIES",
        "ERROR",
    ]
)


def _format_row(letter: DeadLetter) -> str:
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


def _format_payload(payload: bytes) -> str:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return repr(payload)  # not JSON (often why it was dead-lettered): the bytes as they are


async def list_dead_letters(
    js: JetStreamContext, *, consumer: str | None = None, service: str | None = None
) -> list[DeadLetter]:
    return await read_dead_letters(js, service=service, consumer=consumer)


async def show(js: JetStreamContext, seq: int) -> DeadLetter | None:
    return await get_dead_letter(js, seq)


async def redrive(js: JetStreamContext, seq: int) -> DeadLetter | None:
    """Send one dead letter back to its consumer; None if there is no such dead letter."""
    return await redrive_dead_letter(js, seq)


async def redrive_all(js: JetStreamContext, consumer: str) -> list[DeadLetter]:
    """Send every dead letter of `consumer` back to it, oldest first."""
    sent: list[DeadLetter] = []
    for letter in await read_dead_letters(js, consumer=consumer):
        redriven = await redrive_dead_letter(js, letter.seq)
        if redriven is not None:
            sent.append(redriven)
    return sent


async def _list(js: JetStreamContext, args: argparse.Namespace, out: TextIO) -> int:
    letters = await list_dead_letters(js, consumer=args.consumer, service=args.service)
    print(_HEADER, file=out)
    for letter in letters:
        print(_format_row(letter), file=out)
    print(f"{len(letters)} dead letter(s)", file=out)
    return 0


async def _show(js: JetStreamContext, args: argparse.Namespace, out: TextIO) -> int:
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
    print(_format_payload(found.payload), file=out)
    return 0


async def _redrive(js: JetStreamContext, args: argparse.Namespace, out: TextIO) -> int:
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


_COMMANDS: dict[str, Callable[[JetStreamContext, argparse.Namespace, TextIO], Awaitable[int]]] = {
    "list": _list,
    "show": _show,
    "redrive": _redrive,
}


async def _connect(url: str) -> Client:
    async def quiet(exc: Exception) -> None:
        """nats-py's default prints a traceback per attempt; the failure is reported once."""

    return await nats.connect(
        url,
        connect_timeout=5,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        error_cb=quiet,
    )


async def run(args: argparse.Namespace, out: TextIO) -> int:
    """The sub-command `args.command` on the NATS at `args.nats_url`; returns the exit status."""
    nc = await _connect(args.nats_url)
    try:
        return await _COMMANDS[args.command](nc.jetstream(timeout=5), args, out)
    finally:
        await nc.close()
