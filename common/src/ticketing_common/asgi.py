"""Small pieces the ASGI middlewares share."""

from __future__ import annotations

from starlette.types import Message, Send


class TrackedSend:
    """A `send` that remembers whether the response has started: from then on an error can no
    longer be answered, only the connection closed (the server does that)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
