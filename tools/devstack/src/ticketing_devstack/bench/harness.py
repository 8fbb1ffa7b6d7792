"""What every figure measures with: the running stack, its databases, the people the bench signs
up, and the figures found so far (`Harness`, one per run).

The figures run one after the other on one harness and hand each other what they leave behind
(the buyers, the tickets for sale, the idle memory, the list's first run), so a figure run alone
(`--only`) makes what it needs itself.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from typing import Any

import aiohttp
import httpx
import nats
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ticketing_devstack.bench import load as loads
from ticketing_devstack.bench.report import Figure
from ticketing_devstack.invariants import mongo_urls
from ticketing_devstack.people import User
from ticketing_devstack.stack import MONGO_SERVICES, Proc, Stack
from ticketing_testing.servers import free_port

# A service's counts of the Mongo commands it sent, by command (GET /debug/mongo-commands); by
# service.
MongoCommands = dict[str, dict[str, int]]


class Harness:
    def __init__(self, args: argparse.Namespace, stack: Stack) -> None:
        self.args = args
        self.stack = stack
        self.figures: list[Figure] = []
        self.samples: dict[str, list[float]] = {}  # propagation, ms, per buyer count
        self.idle_rss: dict[str, float] = {}
        self.seller: User | None = None
        self.buyers: list[User] = []
        # Each buyer's connection for ordering (`buying.session_of`), by user id.
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        # currentuser (valid cookie) requests/s on one core, by whether it was traced.
        self.currentuser: dict[bool, float] = {}
        self.pool: list[str] = []  # tickets for sale that orders knows of
        self.list_base: tuple[int, loads.LoadResult] | None = None
        self.list_since = ObjectId()
        self.mongo: dict[str, AsyncDatabase[dict[str, Any]]] = {
            svc: AsyncMongoClient(url, tz_aware=True)[svc]
            for svc, url in mongo_urls(stack.urls).items()
        }
        self.http = httpx.AsyncClient(timeout=30)

    def url(self, service: str) -> str:
        return self.stack.urls[service]

    def pid(self, name: str) -> int:
        popen = self.stack.procs[name].popen
        assert popen is not None
        return popen.pid

    def figure(self, name: str) -> Figure | None:
        """The figure found so far under `name`, if any."""
        return next((f for f in self.figures if f.name == name), None)

    # --- processes of its own ------------------------------------------------------------------

    def spawn(
        self, name: str, args: list[str], env: dict[str, str], cpu: int | None, ready: str
    ) -> str:
        """One more uvicorn process (own port, on `cpu` when given), ready; its URL."""
        port = free_port()
        args = list(args)
        args[args.index("--port") + 1] = str(port)
        self.stack.procs[name] = Proc(
            name, [*loads.pinned(cpu), *args], env=env, port=port, ready_path=ready
        )
        self.stack.spawn(name)
        self.stack.wait_ready(name, 60)
        return f"http://127.0.0.1:{port}"

    def hello(self, cpu: int | None, factory: str = "create_app") -> str:
        """A baseline app of `bench/hello.py` under the services' uvicorn flags; its URL."""
        args = list(self.stack.procs["auth"].args)
        args[args.index("--factory") + 1] = f"ticketing_devstack.bench.hello:{factory}"
        return self.spawn("hello", args, {}, cpu, "/")

    def retire(self, name: str) -> None:
        self.stack.kill(name)
        del self.stack.procs[name]

    # --- measuring -----------------------------------------------------------------------------

    def measure(self, load: loads.Load, cpu: int | None = None) -> loads.LoadResult:
        """`load` after an unmeasured run of `--warmup` seconds."""
        if self.args.warmup > 0:
            loads.run(dataclasses.replace(load, seconds=self.args.warmup), cpu=cpu)
        return loads.run(load, cpu=cpu)

    async def settle(self, timeout: float = 120) -> None:
        """Until every durable consumer on the bus has nothing pending: the system is quiet."""
        nc = await nats.connect(self.url("nats"))
        try:
            jsm = nc.jsm()
            deadline = time.monotonic() + timeout
            quiet = 0
            while quiet < 2:
                busy = 0
                for stream in await jsm.streams_info():
                    for consumer in await jsm.consumers_info(stream.config.name or ""):
                        busy += (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
                quiet = quiet + 1 if busy == 0 else 0
                if time.monotonic() > deadline:
                    print(f"  (bus not quiet after {timeout:.0f} s: {busy} pending)", flush=True)
                    return
                await asyncio.sleep(0.25)
        finally:
            await nc.close()

    async def mongo_commands(self) -> MongoCommands:
        """Each service's count of its Mongo commands so far."""
        counts: MongoCommands = {}
        for svc in MONGO_SERVICES:
            res = await self.http.get(f"{self.url(svc)}/debug/mongo-commands")
            counts[svc] = res.json() if res.status_code == 200 else {}
        return counts

    # --- people --------------------------------------------------------------------------------

    async def users(self, n: int) -> list[User]:
        """`n` people signed up (a few at a time: each signup hashes a password)."""
        sem = asyncio.Semaphore(4)

        async def signup() -> User:
            async with sem:
                return await User(self.url("gateway")).signup()

        return list(await asyncio.gather(*(signup() for _ in range(n))))

    async def one_cookie(self) -> tuple[User, str]:
        """A person signed up and their session cookie; their own client closed (the cookie
        goes on other connections)."""
        user = (await self.users(1))[0]
        cookie = self.cookie(user)
        await user.http.aclose()
        return user, cookie

    @staticmethod
    def cookie(user: User) -> str:
        return "; ".join(f"{k}={v}" for k, v in user.http.cookies.items())

    async def close(self) -> None:
        for user in [*self.buyers, *([self.seller] if self.seller else [])]:
            await user.http.aclose()
        for session in self.sessions.values():
            await session.close()
        await self.http.aclose()
