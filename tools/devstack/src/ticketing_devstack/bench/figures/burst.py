"""currentuser during a sign-in burst: its p99 on an auth process of its own while
`BURST_SIGNINS` sign-ins (Argon2) at once hit it, against its p99 with no burst (same process,
same run). Twice: with the hashing routes in their line of their own (as configured), then in
the main line (HTTP_HASHING_CONCURRENCY=0, as before that line existed).
"""

from __future__ import annotations

import concurrent.futures
import json
import time

from ticketing_devstack.bench import load as loads
from ticketing_devstack.bench.harness import Harness
from ticketing_devstack.bench.report import Figure, ms, per_second

# Sign-ins in flight at once, and currentuser's connections (a few pages being rendered)
# measured meanwhile.
BURST_SIGNINS, BURST_READERS = 64, 2
BURST_LEAD_SECONDS = 2.0


async def signin_burst(h: Harness) -> None:
    user, cookie = await h.one_cookie()
    auth = h.stack.procs["auth"]
    body = json.dumps({"email": user.email, "password": "password123"})
    for own_line in (True, False):
        env = {**auth.env, **({} if own_line else {"HTTP_HASHING_CONCURRENCY": "0"})}
        url = h.spawn("auth-burst", auth.args, env, None, "/readyz")
        try:
            reads = loads.Load(
                f"{url}/api/users/currentuser",
                headers={"Cookie": cookie},
                connections=BURST_READERS,
                seconds=h.args.seconds,
            )
            quiet = h.measure(reads)
            burst = loads.Load(
                f"{url}/api/users/signin",
                method="POST",
                body=body,
                headers={"Content-Type": "application/json"},
                connections=BURST_SIGNINS,
                # Under way before the reads start, and still on after they end.
                seconds=h.args.seconds + 2 * BURST_LEAD_SECONDS,
            )
            during, signins = alongside(burst, reads)
        finally:
            h.retire("auth-burst")
        h.figures.append(_figure(own_line, quiet, during, signins))


def alongside(
    background: loads.Load, load: loads.Load
) -> tuple[loads.LoadResult, loads.LoadResult]:
    """`load` measured while `background` runs (started `BURST_LEAD_SECONDS` before);
    both results."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        behind = pool.submit(loads.run, background)
        time.sleep(BURST_LEAD_SECONDS)
        measured = loads.run(load)
        return measured, behind.result()


def _figure(
    own_line: bool, quiet: loads.LoadResult, during: loads.LoadResult, signins: loads.LoadResult
) -> Figure:
    line = "own line" if own_line else "in the main line (HTTP_HASHING_CONCURRENCY=0)"
    return Figure(
        f"currentuser p99 during a sign-in burst, sign-ins {line}",
        f"{ms(during.p99)} (p50 {ms(during.p50)}; "
        f"{per_second(signins.rps)} sign-ins, {signins.errors} refused)",
        f"{ms(quiet.p99)} with no burst",
        "-",
        None,
        {
            "p50": during.p50,
            "p99": during.p99,
            "requests": during.requests,
            "errors": during.errors,
            "baseline_p50": quiet.p50,
            "baseline_p99": quiet.p99,
            "signins_per_second": signins.rps,
            "signins_refused": signins.errors,
            "signins_at_once": BURST_SIGNINS,
            "own_line": own_line,
        },
    )
