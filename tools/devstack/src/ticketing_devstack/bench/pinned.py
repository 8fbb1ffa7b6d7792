"""Runs on one core: a server process of its own pinned to CPU 0 (`taskset`), the load pinned to
CPU 1, so what is measured is what one core of the server does, not what the two cores shared
with the rest of the stack do."""

from __future__ import annotations

from ticketing_devstack.bench import load as loads
from ticketing_devstack.bench.harness import Harness

SERVER_CPU, LOAD_CPU = 0, 1


def pinned_hello(h: Harness, factory: str) -> loads.LoadResult:
    """GET / of a baseline app (`bench/hello.py`) on CPU 0, the load on CPU 1."""
    hello = h.hello(SERVER_CPU, factory)
    try:
        return h.measure(
            loads.Load(f"{hello}/", connections=h.args.connections, seconds=h.args.seconds),
            cpu=LOAD_CPU,
        )
    finally:
        h.retire("hello")


def pinned_currentuser(
    h: Harness, cookie: str, *, kept: float | None
) -> dict[str, loads.LoadResult]:
    """currentuser of a second auth process on CPU 0, the load on CPU 1, with and without a
    session cookie; tracing off (`kept` None: OTEL_SDK_DISABLED=true), or on with the share
    `kept` of new traces sampled (1.0 as the stack runs it: every request a span, written
    out). Off and every trace kept: remembered for the tracing figure."""
    auth = h.stack.procs["auth"]
    env = {
        **auth.env,
        "OTEL_SDK_DISABLED": str(kept is None).lower(),
        "OTEL_TRACES_SAMPLER_ARG": str(1.0 if kept is None else kept),
    }
    pinned = h.spawn("auth-pinned", auth.args, env, SERVER_CPU, "/readyz")
    try:
        found = {
            label: h.measure(
                loads.Load(
                    f"{pinned}/api/users/currentuser",
                    headers=headers,
                    connections=h.args.connections,
                    seconds=h.args.seconds,
                ),
                cpu=LOAD_CPU,
            )
            for label, headers in (("valid cookie", {"Cookie": cookie}), ("no cookie", {}))
        }
    finally:
        h.retire("auth-pinned")
    if kept in (None, 1.0):
        h.currentuser[kept is not None] = found["valid cookie"].rps
    return found
