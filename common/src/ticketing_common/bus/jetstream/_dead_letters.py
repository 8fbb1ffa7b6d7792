"""Dead letters on JetStream: how they are stored, read back and re-driven.

A dead letter is the original payload published on `deadletter.<service>.<durable>` in the
DEADLETTER stream, its facts in headers. It is read back by stream sequence (that number is what
an operator names), and re-driven by publishing the payload on `redrive.<subject>.<durable>`:
only that durable consumer filters on it, so the other services that consume the same subject
do not get it again. The re-drive's Nats-Msg-Id is derived from the dead letter, so re-driving
it twice within the de-duplication window stores it once; and the dead letter is deleted once
re-driven, so a later attempt finds nothing to send. (A crash between the two leaves the dead
letter in place; re-driving it again then relies on the window, and past it on the handlers
being idempotent, as every redelivery does.)
"""

from __future__ import annotations

from datetime import UTC, datetime

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg

from ticketing_common.bus.contract import DeadLetter
from ticketing_common.bus.streams import (
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    redrive_subject,
)

H_SUBJECT = "Ticketing-Subject"
H_DURABLE = "Ticketing-Durable"
H_SERVICE = "Ticketing-Service"
H_DELIVERIES = "Ticketing-Deliveries"
H_ERROR = "Ticketing-Error"
H_STREAM_SEQ = "Ticketing-Stream-Seq"
# JetStream's error code for a message sequence that is not (or no longer) in the stream.
NO_MESSAGE_FOUND = 10057


def header_text(text: str, limit: int = 500) -> str:
    """A header value: one line (a newline would break the NATS protocol), bounded."""
    return " ".join(text.split())[:limit]


def dead_letter_subject(service: str, durable: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{service}.{durable}"


async def store_dead_letter(js: JetStreamContext, letter: DeadLetter) -> None:
    """Publish a dead letter and wait for the server to have stored it."""
    await js.publish(
        dead_letter_subject(letter.service, letter.durable),
        letter.payload,
        headers={
            # Unique per original message, so a retried dead-lettering is stored once.
            "Nats-Msg-Id": f"{letter.durable}:{letter.stream_seq}",
            H_SUBJECT: letter.subject,
            H_DURABLE: letter.durable,
            H_SERVICE: letter.service,
            H_DELIVERIES: str(letter.deliveries),
            H_ERROR: header_text(letter.error),
            H_STREAM_SEQ: str(letter.stream_seq),
        },
    )


def _from_raw(raw: RawStreamMsg) -> DeadLetter:
    headers: dict[str, str] = raw.headers or {}
    subject: str = raw.subject or ""
    parts = subject.split(".", 2)
    at = raw.time if isinstance(raw.time, datetime) else datetime.now(UTC)
    return DeadLetter(
        subject=headers.get(H_SUBJECT, ""),
        durable=headers.get(H_DURABLE, parts[2] if len(parts) == 3 else ""),
        payload=raw.data or b"",
        deliveries=int(headers.get(H_DELIVERIES, "0") or 0),
        error=headers.get(H_ERROR, ""),
        at=at,
        seq=int(raw.seq or 0),
        stream_seq=int(headers.get(H_STREAM_SEQ, "0") or 0),
        service=headers.get(H_SERVICE, parts[1] if len(parts) == 3 else ""),
    )


async def read_dead_letters(
    js: JetStreamContext, *, service: str | None = None, consumer: str | None = None
) -> list[DeadLetter]:
    """Every dead letter, oldest first; only `service`'s or `consumer`'s when given.

    Read message by message by sequence (next matching subject): no consumer to create, no
    idle timeout to wait out at the end, and deleted (re-driven) ones are simply skipped.
    """
    wanted = f"{DEAD_LETTER_PREFIX}.{service or '*'}.{consumer or '*'}"
    out: list[DeadLetter] = []
    seq = 1
    while True:
        try:
            raw = await js.get_msg(DEAD_LETTER_STREAM, seq=seq, subject=wanted, next=True)
        except nats.js.errors.NotFoundError:
            return out  # no more (or no DEADLETTER stream yet: nothing was dead-lettered)
        out.append(_from_raw(raw))
        seq = int(raw.seq or seq) + 1


async def get_dead_letter(js: JetStreamContext, seq: int) -> DeadLetter | None:
    """Dead letter `seq`; None if there is none (any more: re-driven)."""
    try:
        raw = await js.get_msg(DEAD_LETTER_STREAM, seq=seq)
    except nats.js.errors.NotFoundError:
        return None
    if not (raw.subject or "").startswith(f"{DEAD_LETTER_PREFIX}."):
        return None
    return _from_raw(raw)


def redrive_msg_id(letter: DeadLetter) -> str:
    return f"redrive:{letter.durable}:{letter.seq}"


async def redrive_dead_letter(js: JetStreamContext, seq: int) -> DeadLetter | None:
    """Send dead letter `seq` back to the consumer that dead-lettered it; None if there is no
    such dead letter (any more: it was re-driven already)."""
    letter = await get_dead_letter(js, seq)
    if letter is None:
        return None
    if not letter.subject or not letter.durable:
        raise ValueError(f"dead letter {seq} does not say which consumer it came from")
    await js.publish(
        redrive_subject(letter.subject, letter.durable),
        letter.payload,
        headers={"Nats-Msg-Id": redrive_msg_id(letter)},
    )
    try:
        await js.delete_msg(DEAD_LETTER_STREAM, seq)
    except nats.js.errors.APIError as exc:
        # Another re-drive of the same letter deleted it first: the same result.
        if not isinstance(exc, nats.js.errors.NotFoundError) and exc.err_code != NO_MESSAGE_FOUND:
            raise
    return letter
