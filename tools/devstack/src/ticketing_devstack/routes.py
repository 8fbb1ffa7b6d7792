"""The one routing table: the gateway routes by it and the Kubernetes Ingress is checked against it.

Longest prefix wins; `/` (everything else) goes to the web client.
"""

from __future__ import annotations

ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/users", "auth"),
    ("/api/tickets", "tickets"),
    ("/api/orders", "orders"),
    ("/api/payments", "payments"),
    ("/", "client"),
)


_LONGEST_FIRST = sorted(ROUTES, key=lambda r: len(r[0]), reverse=True)


def route(path: str) -> str:
    """The service that serves `path`."""
    for prefix, service in _LONGEST_FIRST:
        if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
            return service
    raise AssertionError("unreachable: '/' matches every path")
