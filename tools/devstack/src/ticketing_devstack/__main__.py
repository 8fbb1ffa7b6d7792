"""`python -m ticketing_devstack up` (what `make up` runs)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from ticketing_devstack.stack import Stack


def main() -> int:
    parser = argparse.ArgumentParser(prog="ticketing_devstack")
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--data-dir", default=os.environ.get("TICKETING_DATA", ".devstack"))
    args = parser.parse_args()
    port = int(os.environ.get("TICKETING_PORT", "8080"))
    stack = Stack(Path(args.data_dir).resolve(), gateway_port=port)

    def on_signal(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Set explicitly: a shell that starts us in the background ignores SIGINT, and then Python
    # would not raise KeyboardInterrupt on Ctrl-C / kill -INT; SIGHUP is a closed terminal.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    started = time.monotonic()
    try:
        stack.start()
        print(
            f"\nTicketing is up in {time.monotonic() - started:.1f}s: http://127.0.0.1:{port}\n"
            f"  data: {stack.data_dir}   (Ctrl-C stops everything)\n",
            flush=True,
        )
        while True:
            for proc in stack:
                if not proc.alive():
                    print(f"{proc.name} exited; stopping everything", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
