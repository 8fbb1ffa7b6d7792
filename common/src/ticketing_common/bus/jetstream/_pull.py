"""A consumer's standing pull requests, as nats.go's `Consume` keeps them: a fast path.

It exists for BENCHMARKS.md, "Why the fast paths exist: the standing pull". The plain way is
nats-py's `fetch`, which sends two requests for each batch it returns (a no-wait probe, then a
waiting pull) and returns after the first message when they trickle in: under steady load that
is about two requests, a status message and a timer per message, more CPU than the handler's
own work, and each message after a batch waits for the next request to reach the server.

Here requests stand on the server and deliver as messages come: one request asks for as many
messages as there are free handler slots, the messages it still owes are counted, and a new one
is sent when slots free up beyond what is owed. The server answers an expired request with a 408
saying how many it no longer owes, and sends a heartbeat while it has nothing to deliver: a pull
that is silent for two heartbeats (its server restarted) is given up and asked again; one the
server says is gone raises `PullLost`. What it relies on of nats-py is the core client (an
inbox subscribed with a callback, a publish with a reply subject, the reconnect count) and
`JetStreamContext.is_status_msg`; the pull protocol itself it speaks on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from ticketing_common.bus._dispatcher import Dispatcher
from ticketing_common.bus._lanes import Lanes

# The most messages one pull asks for (fewer when fewer handler slots are free).
FETCH_BATCH = 64
# A pull stands on the server this long, delivering messages as they come; while it has nothing
# to deliver the server sends a heartbeat this often, so a pull lost with its server (a restart)
# is noticed after two silent heartbeats and asked again.
PULL_EXPIRES = 30.0
PULL_HEARTBEAT = 5.0
_NANOS = 1_000_000_000


class PullLost(Exception):
    """The standing pull is gone from the server (its consumer deleted, the server wiped)."""


class StandingPull:
    """One consumer's standing pull: asks the server for messages while its lanes have room
    and its dispatcher does not pause it, and hands each message to `deliver`."""

    def __init__(
        self,
        nc: Client,
        *,
        stream: str,
        durable: str,
        lanes: Lanes,
        dispatcher: Dispatcher,
        deliver: Callable[[Msg], None],
        wake: asyncio.Event,
        heartbeat: float = PULL_HEARTBEAT,
    ) -> None:
        self.nc, self.durable, self.lanes, self.dispatcher = nc, durable, lanes, dispatcher
        self.deliver = deliver
        self.wake = wake
        self.heartbeat = heartbeat
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox = nc.new_inbox()
        self.owed = 0
        self.heard = time.monotonic()
        self.lost: str | None = None
        self.sub: Subscription | None = None
        self._ticker: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        self.sub = await self.nc.subscribe(self.inbox, cb=self._on_msg)
        # Ask for more when this many slots are free beyond what is owed (or any, when nothing
        # is): fewer, larger requests under load, and no wait for an idle consumer.
        threshold = max(1, self.lanes.limit // 4)
        reconnects = self.nc.stats["reconnects"]
        # A look every heartbeat at least, for a pull gone silent (a timer: a wait_for per turn
        # would cost as much as the rest of the turn, and a turn comes with every message).
        self._ticker = asyncio.get_running_loop().call_later(self.heartbeat, self._tick)
        try:
            await self._loop(threshold, reconnects)
        finally:
            if self._ticker is not None:
                self._ticker.cancel()

    def _tick(self) -> None:
        self.wake.set()
        self._ticker = asyncio.get_running_loop().call_later(self.heartbeat, self._tick)

    async def _loop(self, threshold: int, reconnects: int) -> None:
        while True:
            _raise_if_cancelled()
            self.wake.clear()
            if self.lost is not None:
                raise PullLost(self.lost)
            now = time.monotonic()
            if self.nc.stats["reconnects"] != reconnects:
                # A new connection: what stood on a restarted server is gone. (A server that
                # stayed up keeps the old requests for the resubscribed inbox until they
                # expire: until then up to twice the handler slots may be in flight.)
                reconnects, self.owed, self.heard = self.nc.stats["reconnects"], 0, now
            if self.owed and now - self.heard > 2 * self.heartbeat + 1:
                raise PullLost(f"no message nor heartbeat for {now - self.heard:.0f} s")
            if self.dispatcher.paused(self.durable):
                # A delivery is held and this consumer's handler needs what is down (or it is
                # this consumer's own): it asks for nothing more; the service's others go on.
                await self.dispatcher.wait_open(self.durable)
                continue
            want = min(self.lanes.free - self.owed, FETCH_BATCH)
            if want > 0 and (not self.owed or want >= threshold) and self.nc.is_connected:
                await self._ask(want)
                _raise_if_cancelled()
            await self.wake.wait()

    async def _ask(self, batch: int) -> None:
        request = {
            "batch": batch,
            "expires": int(max(PULL_EXPIRES, 4 * self.heartbeat) * _NANOS),
            "idle_heartbeat": int(self.heartbeat * _NANOS),
        }
        await self.nc.publish(self.next_subject, json.dumps(request).encode(), reply=self.inbox)
        if not self.owed:
            self.heard = time.monotonic()
        self.owed += batch

    async def _on_msg(self, msg: Msg) -> None:
        self.heard = time.monotonic()
        status = JetStreamContext.is_status_msg(msg)
        if not status:
            self.owed = max(self.owed - 1, 0)
            self.deliver(msg)
            return
        if status == "100":  # an idle heartbeat: the request stands
            return
        headers = msg.headers or {}
        pending = headers.get("Nats-Pending-Messages")
        description = headers.get("Description", "")
        if status == "408" or (pending is not None and "Consumer Deleted" not in description):
            # Expired (408), or ended early (409: the server shutting down, ...): it no longer
            # owes these (all it owed, if it does not say), and a new pull is asked for.
            owed = int(pending) if pending is not None and pending.isdigit() else self.owed
            self.owed = max(self.owed - owed, 0)
        else:
            # Anything else says the pull cannot stand: no responders (503, the durable is gone
            # with a wiped store), consumer deleted, a request refused (400, a 409 limit).
            # Asking again at once would be answered the same way, as fast as it can ask: set
            # the durable up again after a pause instead (the bus's consume loop).
            self.owed = 0
            self.lost = f"{status} {description}".strip()
        self.wake.set()

    async def close(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
            self.sub = None


def _raise_if_cancelled() -> None:
    """Honour a cancellation that nats-py swallowed: its publish and subscribe catch a
    CancelledError landing while they wait to kick its flusher (`Client._flush_pending`), so a
    consumer cancelled then (the bus closing) would go on pulling, and the close wait forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
