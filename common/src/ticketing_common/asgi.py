"""Small pieces the ASGI middlewares share."""

from __future__ import annotations

from starlette.types import Message, Send


class TrackedSend:
    """A `send` that remembers whether the response has started (from then on an error can no
    longer be answered, only the connection closed: the server does that), and its status."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        # An answer never started is the server's 500.
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
        await self._send(message)
