"""`--profile`: py-spy recording chosen services during the busiest purchase phase, as collapsed
stacks in bench/profile-<service>.txt (for flamegraph.pl or speedscope)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ticketing_devstack.bench.harness import Harness

Recording = list[tuple[str, subprocess.Popen[bytes]]]  # py-spy, by the service it records


def start_profiles(h: Harness) -> Recording:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    running = []
    for name in h.args.profile:
        out = h.args.out / f"profile-{name}.txt"
        command = [spy, "record", "--pid", str(h.pid(name)), "-f", "raw", "-o", str(out)]
        running.append(
            (
                name,
                subprocess.Popen(
                    [*command, "-r", "100"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                ),
            )
        )
    return running


def stop_profiles(running: Recording) -> None:
    for _, proc in running:
        proc.send_signal(signal.SIGINT)  # py-spy writes its collapsed stacks and exits
    for name, proc in running:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            print(f"  (py-spy on {name} did not finish)", flush=True)
