"""Limits on what a request may take: its body's size (413), and a place among the requests
the process serves at once (the rest wait in line; 503 once the line is full), in the main line
or in a line of its own (`Line`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_common.asgi import HttpMiddleware, TrackedSend

__all__ = [
    "BodySizeLimit",
    "ConcurrencyLimit",
    "Line",
]

TOO_LARGE = "Request body too large"
BUSY = "Service busy, try again"
BUSY_RETRY_AFTER_SECONDS = 1


class BodySizeLimit(HttpMiddleware):
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
        # A chunked body has no length up front: count as it streams in.
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException, because FastAPI re-raises those from body parsing (and
                    # turns anything else into a 400); our handler renders the 413.
                    raise HTTPException(413, TOO_LARGE)
            return message

        tracked = TrackedSend(send)
        try:
            await self.app(scope, counting_receive, tracked)
        except HTTPException as exc:
            if exc.status_code != 413 or tracked.started:
                raise
            await self._reject(send)

    @staticmethod
    async def _reject(send: Send) -> None:
        await _refuse(send, 413, TOO_LARGE)


async def _refuse(
    send: Send, status: int, message: str, headers: Collection[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `status` with `message` in the error shape, before the app saw the request."""
    body = json.dumps({"errors": [{"message": message}]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Line:
    """A line of its own for the requests to `paths` (exact paths): at most `limit` of them
    served at once (0: no limit), `queue` waiting. They wait there and hold no place in the
    process's main line, so the requests of the main line never queue behind them."""

    paths: frozenset[str]
    limit: int
    queue: int


class _Slots:
    """One line: its places, and how many wait for one."""

    def __init__(self, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.slots = asyncio.Semaphore(max(limit, 1))
        self.waiting = 0

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limit <= 0:
            await app(scope, receive, send)
            return
        if self.slots.locked() and self.waiting >= self.queue:
            retry = str(BUSY_RETRY_AFTER_SECONDS).encode()
            await _refuse(send, 503, BUSY, [(b"retry-after", retry)])
            return
        # A free slot is taken without suspending, so only a request that waits is ever seen
        # counted.
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            await app(scope, receive, send)
        finally:
            self.slots.release()


class ConcurrencyLimit(HttpMiddleware):
    """At most `limit` requests served at once; the others wait in line, first come first
    served, and once `queue` are waiting a new one is refused at once (503, Retry-After).

    Why: a process is one event loop, which also runs its event consumers and its outbox relay.
    Every request admitted adds its steps to each turn of that loop, so under a rush a
    consumer's next step, and the publish of an event just written, waited behind dozens of
    requests' (the propagation with and without the limit: BENCHMARKS.md, "The targets: met,
    missed, and why"). A request waiting here holds no place in the loop and no Mongo or NATS
    work. `exempt` paths (the probes, the scrape) never wait: a probe stuck behind a rush would
    have the orchestrator restart a busy but healthy process.

    `lines` give some paths a line of their own (`Line`): requests that spend their time off
    the loop (auth's password hashing, which holds a core a long while for each) would
    otherwise fill the main line under a burst, and the cheap reads every page makes
    (currentuser) would wait behind them.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        queue: int,
        exempt: Collection[str] = (),
        lines: Collection[Line] = (),
    ) -> None:
        super().__init__(app)
        self.limit = limit
        self.queue = queue
        self.exempt = frozenset(exempt)
        self._main = _Slots(limit, queue)
        # One line for all the paths of a `Line`, however many.
        self._lines: dict[str, _Slots] = {}
        for line in lines:
            slots = _Slots(line.limit, line.queue)
            self._lines.update(dict.fromkeys(line.paths, slots))

    @property
    def waiting(self) -> int:
        """How many requests wait in the main line now."""
        return self._main.waiting

    def waiting_for(self, path: str) -> int:
        """How many requests wait now in the line `path` is served in."""
        return self._lines.get(path, self._main).waiting

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path in self.exempt:
            await self.app(scope, receive, send)
            return
        await self._lines.get(path, self._main).serve(self.app, scope, receive, send)
