"""Small pieces the ASGI middlewares share."""

from __future__ import annotations

import abc

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "HttpMiddleware",
    "TrackedSend",
]


class HttpMiddleware(abc.ABC):
    """A pure ASGI middleware (no BaseHTTPMiddleware: that costs a task and a stream per
    request) that acts on HTTP requests only; lifespan and anything else pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    @abc.abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request, calling `self.app` to pass it on."""


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
