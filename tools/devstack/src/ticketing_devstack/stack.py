"""Start, watch and stop every process of the system: `make up` and the e2e tests use this.

Processes run in their own sessions so a Ctrl-C reaches only this supervisor, which then stops
them all (TERM, then KILL) and leaves nothing running. Data lives under one folder, so a
restart keeps users, tickets and orders.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from ticketing_testing.servers import (
    free_port,
    nats_args,
    nx_args,
    redis_args,
    redis_password,
    stop_process_group,
)

SERVICES = ("auth", "tickets", "orders", "payments", "expiration")
MONGO_SERVICES = ("auth", "tickets", "orders", "payments")
PASSTHROUGH = (
    "ORDER_EXPIRATION_SECONDS",
    "STRIPE_KEY",
    "JWT_KEY",
    "LOG_LEVEL",
    "NATS_MAX_DELIVER",
    "NATS_ACK_WAIT_SECONDS",
    "NATS_RETRY_DELAY_SECONDS",
    "OUTBOX_SWEEP_SECONDS",
    "NATS_RETRY_HORIZON_SECONDS",
    "EXPIRY_SWEEP_SECONDS",
    "MONGO_TIMEOUT_SECONDS",
    # `make bench`: each service counts its Mongo commands (GET /debug/mongo-commands).
    "MONGO_COUNT_COMMANDS",
    # Expiration fires, and orders sweeps, this long after an order's expiresAt.
    "EXPIRY_GRACE_SECONDS",
    # Each stream's byte limit (see bus/streams.py); a test stack may make one small.
    "NATS_MAX_BYTES_USERS",
    "NATS_MAX_BYTES_TICKETS",
    "NATS_MAX_BYTES_ORDERS",
    "NATS_MAX_BYTES_EXPIRATION",
    "NATS_MAX_BYTES_PAYMENTS",
    "NATS_MAX_BYTES_DEADLETTER",
)

# The JetStream store (store_dir comes from the command line, which may not repeat it).
NATS_CONFIG = """\
jetstream {
  max_file_store: 4GiB
  max_memory_store: 64MiB
}
"""

CLIENT_PASSTHROUGH = ("LOG_LEVEL", "CLIENT_CSRF_KEY", "STRIPE_PUBLISHABLE_KEY")


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    ready_path: str | None = None  # HTTP path answering 200 when ready; else the port opening
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def gateway_command(python: str, port: int) -> list[str]:
    """How the local stack runs its gateway (its upstreams in GATEWAY_UPSTREAMS)."""
    return [
        python,
        "-m",
        "uvicorn",
        "--factory",
        "ticketing_devstack.gateway:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        # The gateway is the edge: no proxy stands before it, so uvicorn must not believe an
        # X-Forwarded-For either (by default it does from 127.0.0.1, where a browser under
        # `make up` is): the address it passes on is its TCP peer's, whatever the browser says.
        "--no-proxy-headers",
        # As ingress-nginx (keepalive_timeout 75 s): longer than any client keeps an idle
        # connection (httpx 5 s, browsers up to 60 s), so a client never sends on a connection
        # the gateway has just closed (seen: a POST lost that way).
        "--timeout-keep-alive",
        "75",
    ]


def _uvicorn(python: str, factory: str, port: int) -> list[str]:
    """How the local stack runs a service or the web client: uvicorn, its app from `factory`."""
    return [
        python,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]


def _store(
    procs: list[Proc],
    name: str,
    folder: Path,
    args: Callable[[int, Path], list[str]],
    url: str,
) -> str:
    """A data store of our own on a free port with its data in `folder`, added to `procs`; its
    URL (`url` with the port filled in)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    procs.append(Proc(name, args(port, folder), port=port))
    return url.format(port=port)


@dataclass(frozen=True)
class DataServers:
    """The servers the services keep their data in and talk through: ours (`procs`, in start
    order) or those the environment named; where each service finds them."""

    procs: list[Proc]
    mongo_urls: dict[str, str]  # by service
    nats_url: str
    redis_url: str


class Stack:
    def __init__(
        self,
        data_dir: Path,
        *,
        gateway_port: int = 8080,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.gateway_port = gateway_port
        self.env = dict(os.environ if env is None else env)
        self.log_dir = log_dir
        self.echo = echo or (lambda line: print(line, flush=True))
        self.procs: dict[str, Proc] = {}
        self._threads: list[threading.Thread] = []
        self.urls: dict[str, str] = {}

    # --- the plan ---------------------------------------------------------------------------------

    def _nats_args(self, port: int, folder: Path) -> list[str]:
        """nats-server with the JetStream store the deployment has (infra/k8s/base/nats.conf):
        the streams' default byte limits are sized to fit it (`bus/streams.py`)."""
        config = self.data_dir / "nats.conf"
        config.write_text(NATS_CONFIG)
        return [*nats_args(port, folder), "-c", str(config)]

    def plan(self) -> list[Proc]:
        """Every process of the stack in the order it starts (the data servers, the fake Stripe,
        the services and the worker, the web client, the gateway); `urls` says where each is."""
        python = sys.executable
        data = self._data_servers()
        stripe, stripe_env = self._fake_stripe(python)
        common = self._common_env(data.nats_url, data.redis_url)
        services, upstreams = self._services(python, common, data.mongo_urls, stripe_env)
        client = self._client(python, common, upstreams)
        upstreams["client"] = f"http://127.0.0.1:{client.port}"
        gateway = self._gateway(python, upstreams)
        self.urls = {
            "gateway": f"http://127.0.0.1:{self.gateway_port}",
            **upstreams,
            "mongo": json.dumps(data.mongo_urls),
            "nats": data.nats_url,
            "redis": data.redis_url,
            **({"stripe": stripe_env["STRIPE_API_BASE"]} if stripe_env else {}),
        }
        return [*data.procs, *stripe, *services, client, gateway]

    def _data_servers(self) -> DataServers:
        """Our own nx-27017 (one per service), nats-server and redis-server, each unless the
        environment names one to use instead."""
        env = self.env
        procs: list[Proc] = []
        if env.get("MONGO_URL"):
            mongo_urls = dict.fromkeys(MONGO_SERVICES, env["MONGO_URL"])
        else:
            mongo_urls = {
                svc: _store(
                    procs,
                    f"mongo-{svc}",
                    self.data_dir / "mongo" / svc,
                    nx_args,
                    "mongodb://127.0.0.1:{port}",
                )
                for svc in MONGO_SERVICES
            }
        nats_url = env.get("NATS_URL") or _store(
            procs, "nats", self.data_dir / "nats", self._nats_args, "nats://127.0.0.1:{port}"
        )
        redis_url = env.get("REDIS_URL") or self._own_redis(procs)
        return DataServers(procs, mongo_urls, nats_url, redis_url)

    def _own_redis(self, procs: list[Proc]) -> str:
        """Our redis-server, with a password (kept in its data folder) as in every topology:
        REDIS_URL carries it to auth, expiration and the worker."""
        folder = self.data_dir / "redis"
        password = redis_password(folder)
        return _store(
            procs,
            "redis",
            folder,
            lambda port, data: redis_args(port, data, password),
            f"redis://:{password}@127.0.0.1:{{port}}/0",
        )

    def _fake_stripe(self, python: str) -> tuple[list[Proc], dict[str, str]]:
        """The local fake of Stripe unless STRIPE_KEY names a real account: its process (or
        none) and what payments needs to use it."""
        if self.env.get("STRIPE_KEY"):
            return [], {}
        port = free_port()
        fake = Proc(
            "stripe",
            [python, "-m", "ticketing_fakestripe", "--host", "127.0.0.1", "--port", str(port)],
            port=port,
        )
        stripe_env = {
            "STRIPE_API_BASE": f"http://127.0.0.1:{port}",
            "STRIPE_KEY": "sk_test_local",
        }
        return [fake], stripe_env

    def _common_env(self, nats_url: str, redis_url: str) -> dict[str, str]:
        """The environment every service and the worker share."""
        env = self.env
        return {
            "ENVIRONMENT": env.get("ENVIRONMENT", "development"),
            # Plain http on localhost: a Secure cookie would never come back.
            "COOKIE_SECURE": env.get("COOKIE_SECURE", "false"),
            "NATS_URL": nats_url,
            "REDIS_URL": redis_url,
            # Every span as a JSON line, for `make trace ORDER=<id>`, written within 0.2 s.
            "TRACES_DIR": env.get("TRACES_DIR") or str(self.data_dir / "traces"),
            "OTEL_BSP_SCHEDULE_DELAY": env.get("OTEL_BSP_SCHEDULE_DELAY", "200"),
            **{k: env[k] for k in PASSTHROUGH if env.get(k)},
        }

    def _services(
        self,
        python: str,
        common: dict[str, str],
        mongo_urls: dict[str, str],
        stripe_env: dict[str, str],
    ) -> tuple[list[Proc], dict[str, str]]:
        """The five services and expiration's worker; each service's URL, by name."""
        procs: list[Proc] = []
        upstreams: dict[str, str] = {}
        for svc in SERVICES:
            port = free_port()
            svc_env = {**common, "MONGO_URL": mongo_urls.get(svc, "")}
            if svc == "payments":
                svc_env.update(stripe_env)
            procs.append(
                Proc(
                    svc,
                    _uvicorn(python, f"ticketing_{svc}.main:create_app", port),
                    env=svc_env,
                    port=port,
                    ready_path="/readyz",
                )
            )
            upstreams[svc] = f"http://127.0.0.1:{port}"
        procs.append(Proc("worker", [python, "-m", "ticketing_expiration.worker"], env=common))
        return procs, upstreams

    def _client(self, python: str, common: dict[str, str], upstreams: dict[str, str]) -> Proc:
        """The web client (the gateway's `/`): it calls each service directly, as it calls their
        Services in Kubernetes, with the browser's address the gateway gave it."""
        env = self.env
        port = free_port()
        client_env = {
            "CLIENT_AUTH_URL": upstreams["auth"],
            "CLIENT_TICKETS_URL": upstreams["tickets"],
            "CLIENT_ORDERS_URL": upstreams["orders"],
            "CLIENT_PAYMENTS_URL": upstreams["payments"],
            # Its CSRF cookie is Secure as the session's is; outside development it
            # needs CLIENT_CSRF_KEY. A STRIPE_PUBLISHABLE_KEY turns on Stripe Elements.
            "ENVIRONMENT": common["ENVIRONMENT"],
            "COOKIE_SECURE": common["COOKIE_SECURE"],
            **{k: env[k] for k in CLIENT_PASSTHROUGH if env.get(k)},
        }
        return Proc(
            "client",
            _uvicorn(python, "ticketing_client.main:create_app", port),
            env=client_env,
            port=port,
            ready_path="/readyz",
        )

    def _gateway(self, python: str, upstreams: dict[str, str]) -> Proc:
        """The gateway on the stack's own port, routing to every upstream but expiration."""
        return Proc(
            "gateway",
            gateway_command(python, self.gateway_port),
            env={
                "GATEWAY_UPSTREAMS": json.dumps(
                    {k: v for k, v in upstreams.items() if k != "expiration"}
                )
            },
            port=self.gateway_port,
        )

    # --- running ----------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for proc in self.plan():
                self.procs[proc.name] = proc
                self.spawn(proc.name)
            deadline = time.monotonic() + timeout
            for proc in self.procs.values():
                self.wait_ready(proc.name, deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise

    def spawn(self, name: str) -> None:
        proc = self.procs[name]
        env = {**self.env, **proc.env}
        for key in ("MONGO_URL", "NATS_URL", "REDIS_URL"):
            if key in proc.env and not proc.env[key]:
                env.pop(key, None)
        env["PYTHONUNBUFFERED"] = "1"
        out: int | IO[bytes] = (
            (self.log_dir / f"{name}.log").open("ab") if self.log_dir else subprocess.PIPE
        )
        proc.popen = subprocess.Popen(
            proc.args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if out is subprocess.PIPE:
            assert proc.popen.stdout is not None
            thread = threading.Thread(
                target=self._pump, args=(name, proc.popen.stdout), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        elif not isinstance(out, int):
            out.close()

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.echo(f"{name:<11}| {raw.decode(errors='replace').rstrip()}")

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + max(timeout, 1.0)
        while True:
            if not proc.alive():
                raise RuntimeError(f"{name} exited during start-up")
            if self._ready(proc):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not become ready")
            time.sleep(0.05)

    @staticmethod
    def _ready(proc: Proc) -> bool:
        if proc.port is None:
            return True
        if proc.ready_path is None:
            try:
                with socket.create_connection(("127.0.0.1", proc.port), timeout=0.2):
                    return True
            except OSError:
                return False
        try:
            res = httpx.get(f"http://127.0.0.1:{proc.port}{proc.ready_path}", timeout=1.0)
        except httpx.HTTPError:
            return False
        return res.status_code == 200

    def clone(self, name: str, new_name: str) -> Proc:
        """A second process of a service (own port, same databases and bus), started and ready."""
        original = self.procs[name]
        port = free_port()
        args = list(original.args)
        if original.port is not None and "--port" in args:
            args[args.index("--port") + 1] = str(port)
        proc = Proc(
            new_name, args, env=dict(original.env), port=port, ready_path=original.ready_path
        )
        self.procs[new_name] = proc
        self.spawn(new_name)
        self.wait_ready(new_name)
        return proc

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        stop_process_group(self.procs[name].popen, sig)

    def restart(self, name: str, *, sig: int = signal.SIGTERM, wait: bool = True) -> None:
        self.kill(name, sig)
        self.spawn(name)
        if wait:
            self.wait_ready(name)

    def stop(self) -> None:
        """Stop everything: the services first, then the servers they use (so that nothing
        logs a lost connection on the way out), each phase all at once."""
        servers = {"nats", "redis", "stripe"}
        apps = [n for n in self.procs if n not in servers and not n.startswith("mongo-")]
        infra = [n for n in self.procs if n not in apps]
        for phase in (apps, infra):
            for name in phase:
                proc = self.procs[name]
                if proc.alive():
                    assert proc.popen is not None
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.popen.pid, signal.SIGTERM)
            for name in phase:
                self.kill(name)

    def __iter__(self) -> Iterator[Proc]:
        return iter(self.procs.values())
