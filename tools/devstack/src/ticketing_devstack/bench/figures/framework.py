"""currentuser on one core: a second auth process pinned to CPU 0, the load on CPU 1, against
two baselines under the same uvicorn flags on the same core (`bench/hello.py`: a bare Starlette
app, and one FastAPI route with nothing of ours, the framework's own share). With a valid
session cookie and with none; tracing off, on (every trace kept, as the stack runs) and on with
a tenth of new traces kept (OTEL_TRACES_SAMPLER_ARG: what a busy deployment may run with).
"""

from __future__ import annotations

from ticketing_devstack.bench import load as loads
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.pinned import pinned_currentuser, pinned_hello
from ticketing_devstack.bench.report import Figure

SAMPLED = 0.1  # the share of traces kept in the sampled currentuser run
TARGET_RATIO = 0.4  # of bare Starlette's requests/s


async def framework(h: Harness) -> None:
    _, cookie = await h.one_cookie()
    base = pinned_hello(h, "create_app")
    bare_fastapi = pinned_hello(h, "create_fastapi_app")
    h.figures.append(
        Figure(
            "an empty FastAPI route, 1 core",
            f"{bare_fastapi.rps:,.0f} req/s ({bare_fastapi.rps / base.rps:.2f}x)",
            f"{base.rps:,.0f} req/s bare Starlette",
            "-",
            None,
            {**bare_fastapi.__dict__, "baseline_rps": base.rps},
        )
    )
    for kept in (None, 1.0, SAMPLED):
        for label, res in pinned_currentuser(h, cookie, kept=kept).items():
            h.figures.append(_currentuser_figure(label, res, kept, base, bare_fastapi))


def _currentuser_figure(
    label: str,
    res: loads.LoadResult,
    kept: float | None,
    base: loads.LoadResult,
    bare_fastapi: loads.LoadResult,
) -> Figure:
    tracing = "off" if kept is None else "on"
    if kept is not None and kept < 1:
        tracing += f", {kept:.0%} of traces kept"
    ratio = res.rps / base.rps
    return Figure(
        f"currentuser ({label}), 1 core, tracing {tracing}",
        f"{res.rps:,.0f} req/s ({ratio:.2f}x; "
        f"{res.rps / bare_fastapi.rps:.2f}x the empty FastAPI route)",
        f"{base.rps:,.0f} req/s bare Starlette",
        f">= {TARGET_RATIO}x",
        ratio >= TARGET_RATIO and res.errors == 0,
        {
            **res.__dict__,
            "baseline_rps": base.rps,
            "fastapi_rps": bare_fastapi.rps,
            "errors": res.errors,
            "traced": kept is not None,
            "traces_kept": kept,
        },
    )
