"""Shared code of the Ticketing services: every service is built the same way from these rooms.

- Kernel modules, which import no engine module (a service's domain code may use them anywhere):
  `events` (the event contracts), `errors`, `money`, `settings`, `validation`.
- Engine packages and modules, what a service runs on: `bus` (JetStream and its in-memory
  twin), `outbox` (events written with the state change, and their relay), `service` (the app
  factory and its runtime), `telemetry` (metrics, traces, the scrape), `mongo`, `asgi` and
  `limits` (middleware), `auth` (the session cookie), `paging`, `periodic`, `logs`.
- `admin`: the operator command, `python -m ticketing_common.admin` (dead letters, outbox
  entries set aside).
Public is what a module or package lists in `__all__` (import it from the package's face, e.g.
`from ticketing_common.outbox import Outbox`); a module whose name starts with an underscore is
private to its package.
"""

__all__ = [
    "admin",
    "asgi",
    "auth",
    "bus",
    "errors",
    "events",
    "limits",
    "logs",
    "money",
    "mongo",
    "outbox",
    "paging",
    "periodic",
    "service",
    "settings",
    "telemetry",
    "validation",
]
