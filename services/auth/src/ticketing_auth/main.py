"""The auth service: `uvicorn --factory ticketing_auth.main:create_app`."""

from __future__ import annotations

from ticketing_auth import repository
from ticketing_auth.api.routes import users
from ticketing_auth.runtime import open_runtime
from ticketing_auth.settings import Settings, get_settings
from ticketing_common.limits import Line
from ticketing_common.service import ServiceSpec

# The routes that hash a password (Argon2id: a core's time each, see BENCHMARKS.md,
# "currentuser during a sign-in burst (issue 21, item 4)").
HASHING_PATHS = frozenset({"/api/users/signup", "/api/users/signin"})


def hashing_line(settings: Settings) -> list[Line]:
    """Signing up and in wait in a line of their own, so a burst of them never holds up the
    cheap requests (currentuser, asked on every page) in the main line; none with
    HTTP_HASHING_CONCURRENCY=0 (they wait in the main line with the rest)."""
    if settings.http_hashing_concurrency == 0:
        return []
    return [
        Line(
            HASHING_PATHS,
            limit=settings.http_hashing_concurrency,
            queue=settings.http_hashing_queue,
        )
    ]


SPEC = ServiceSpec(
    name="auth",
    routers=[users.router],
    open_runtime=open_runtime,
    indexes=repository.INDEXES,
    settings=get_settings,
    outbox_collections=[repository.USERS],
    # Asked on every page the web client renders.
    direct=[users.current_user],
    lines=hashing_line,
)

create_app = SPEC.create_app
