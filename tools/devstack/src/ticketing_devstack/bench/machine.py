"""What the bench reads of the machine and of the stack's processes: the machine's description
for results.json, each process's resident memory and the CPU time it has used."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import NotRequired, TypedDict

import psutil

from ticketing_devstack.bench import load as loads
from ticketing_devstack.stack import SERVICES, Proc


class Machine(TypedDict):
    """The machine a run measured, as results.json's `machine` has it."""

    cpu: str
    cores: int | None
    memory_gb: float
    python: str
    kernel: str
    load_generator: str
    pinning: bool
    commit: str
    # Other work on the machine skews every figure: the load average when the run started.
    load_average_at_start: list[float]
    load_average_at_end: NotRequired[list[float]]


def machine() -> Machine:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor(),
    )
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total_kb = next((int(ln.split()[1]) for ln in meminfo.splitlines() if "MemTotal" in ln), 0)
    git = shutil.which("git")
    commit = (
        subprocess.run(
            [git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if git
        else ""
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(total_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_generator": loads.generator(),
        "pinning": bool(shutil.which("taskset")),
        "commit": commit,
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its living children have used so far."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            used = proc.cpu_times()
            total += used.user + used.system
    return total


def cpu_by_process(
    procs: Mapping[str, Proc], since: Mapping[str, float] | None = None
) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack, and by this process (the load,
    the probe) as "the bench"; minus `since` when given."""
    used: dict[str, float] = {}
    for name, proc in procs.items():
        if proc.popen is not None:
            used[name] = cpu_seconds(proc.popen.pid)
    # This process's children are the stack's processes too: the bench is what is left.
    used["the bench"] = cpu_seconds(os.getpid()) - sum(used.values())
    if since is not None:
        used = {name: seconds - since.get(name, 0.0) for name, seconds in used.items()}
    return used


def cpu_group(name: str) -> str:
    """Which part of the stack a process is, for the CPU-per-purchase breakdown."""
    if name.startswith("mongo"):
        return "nx-27017"
    if name in (*SERVICES, "worker"):
        return "services"
    return name


def by_group(used: Mapping[str, float]) -> dict[str, float]:
    """Per-process CPU seconds summed by part of the stack (services, nx-27017, ...)."""
    groups: dict[str, float] = {}
    for name, seconds in used.items():
        group = cpu_group(name)
        groups[group] = groups.get(group, 0.0) + seconds
    return groups


def cores() -> int:
    """The CPUs this process may run on: the stack's and the bench's, all of them."""
    return len(os.sched_getaffinity(0))
