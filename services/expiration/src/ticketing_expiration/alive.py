"""The worker's liveness, for a Kubernetes probe (it has no HTTP port to probe).

The worker touches a file (`WORKER_ALIVE_FILE`) each time its loop turns: every dequeue (at
most `WORKER_DEQUEUE_TIMEOUT_SECONDS` apart), every few seconds while a job runs, and while it
waits for a lost Redis (an outage it rides out itself, so not a reason to restart it).
`python -m ticketing_expiration.alive FILE SECONDS` exits 0 only when the file was touched in
the last SECONDS: a worker stuck anywhere else fails it and is restarted.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path


def touch(path: str) -> None:
    """Mark the worker alive now (nothing when no file is configured)."""
    if path:
        with contextlib.suppress(OSError):  # a probe failing is the right outcome then
            Path(path).touch()


def fresh(path: str, max_age_seconds: float) -> bool:
    try:
        touched = Path(path).stat().st_mtime
    except OSError:
        return False
    return time.time() - touched <= max_age_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketing_expiration.alive")
    parser.add_argument("file", help="the worker's WORKER_ALIVE_FILE")
    parser.add_argument("seconds", type=float, help="how old it may be")
    args = parser.parse_args(argv)
    return 0 if fresh(args.file, args.seconds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
