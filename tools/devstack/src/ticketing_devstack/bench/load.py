"""The HTTP load generator: `wrk` (Debian's, `apt-get install -y wrk`) when installed, else our
own keep-alive HTTP/1.1 driver on asyncio (`python -m ticketing_devstack.bench.load`), which
prints the same summary. Either runs as a separate process, pinned to a CPU when asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ticketing_devstack.bench.report import percentile

MARK = "BENCHJSON "


@dataclass(frozen=True)
class Load:
    """What to send: one request, repeated on `connections` keep-alive connections."""

    url: str
    method: str = "GET"
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    connections: int = 1
    seconds: float = 10.0


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50: float  # seconds
    p99: float
    errors: int  # non-2xx answers and socket errors
    tool: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "asyncio"


def pinned(cpu: int | None) -> list[str]:
    """The prefix that runs a command on one CPU (util-linux taskset), or nothing."""
    if cpu is None or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def _lua_string(value: str) -> str:
    level = "=" * 4
    return f"[{level}[{value}]{level}]"


def wrk_script(load: Load) -> str:
    """The wrk Lua script: the request, and a done() that prints the summary as JSON."""
    lines = [f"wrk.method = {_lua_string(load.method)}"]
    if load.body is not None:
        lines.append(f"wrk.body = {_lua_string(load.body)}")
    # (A space after `[`: `[[` would open a long string.)
    lines += [
        f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in load.headers.items()
    ]
    lines.append(
        """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('%s{"requests":%d,"micros":%d,"p50":%d,"p99":%d,"errors":%d}\\n',
    '"""
        + MARK
        + """', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status + e.connect + e.read + e.write + e.timeout))
end"""
    )
    return "\n".join(lines) + "\n"


def parse_summary(output: str, tool: str) -> LoadResult:
    for line in output.splitlines():
        if line.startswith(MARK):
            raw = json.loads(line[len(MARK) :])
            return LoadResult(
                requests=raw["requests"],
                seconds=raw["micros"] / 1e6,
                p50=raw["p50"] / 1e6,
                p99=raw["p99"] / 1e6,
                errors=raw["errors"],
                tool=tool,
            )
    raise RuntimeError(f"{tool} printed no summary:\n{output[-2000:]}")


def run(load: Load, *, cpu: int | None = None) -> LoadResult:
    """Run the load in its own process (on `cpu` when given) and return its summary."""
    tool = generator()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        if tool == "wrk":
            script = Path(tmp) / "load.lua"
            script.write_text(wrk_script(load))
            threads = 1 if cpu is not None else min(2, load.connections)
            args = [
                "wrk",
                f"-t{threads}",
                f"-c{load.connections}",
                f"-d{max(1, round(load.seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                load.url,
            ]
        else:
            args = [
                sys.executable,
                "-m",
                "ticketing_devstack.bench.load",
                json.dumps(load.__dict__),
            ]
        done = subprocess.run(
            [*pinned(cpu), *args], capture_output=True, text=True, check=False, timeout=300
        )
    return parse_summary(done.stdout + done.stderr, tool)


# --- the asyncio driver (when there is no wrk) ----------------------------------------------------


def _request_bytes(load: Load) -> bytes:
    parts = urlsplit(load.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = (load.body or "").encode()
    headers = {"Host": parts.netloc, **load.headers}
    if load.body is not None:
        headers["Content-Length"] = str(len(body))
    head = f"{load.method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return (head + "\r\n").encode() + body


async def _connection(
    load: Load, request: bytes, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    parts = urlsplit(load.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not 200 <= status < 300:
                errors[0] += 1
    except (OSError, asyncio.IncompleteReadError):
        errors[0] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def drive(load: Load) -> LoadResult:
    request = _request_bytes(load)
    latencies: list[float] = []
    errors = [0]
    start = time.perf_counter()
    deadline = start + load.seconds
    await asyncio.gather(
        *(_connection(load, request, deadline, latencies, errors) for _ in range(load.connections))
    )
    return LoadResult(
        requests=len(latencies),
        seconds=time.perf_counter() - start,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        errors=errors[0],
        tool="asyncio",
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="ticketing_devstack.bench.load")
    parser.add_argument("load", help="the Load as JSON")
    load = Load(**json.loads(parser.parse_args().load))
    try:
        import uvloop

        result = uvloop.run(drive(load))
    except ImportError:
        result = asyncio.run(drive(load))
    summary = {
        "requests": result.requests,
        "micros": round(result.seconds * 1e6),
        "p50": round(result.p50 * 1e6),
        "p99": round(result.p99 * 1e6),
        "errors": result.errors,
    }
    print(MARK + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
