"""Argon2id hashing through pwdlib, off the event loop, with parameters from the settings.

Argon2 is deliberately slow (milliseconds of CPU, megabytes of memory); run on the loop it would
stall every other request of the process, so every call goes to a pool of threads of its own
(argon2-cffi releases the GIL), one per CPU the process may run on: asyncio's default pool would
run up to 32 at once under a burst of sign-ins, each holding its memory cost.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

T = TypeVar("T")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container or `taskset` narrows),
    not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Passwords:
    """Hashes and verifies passwords; an unknown user costs what a wrong password does."""

    def __init__(
        self, *, memory_kib: int, time_cost: int, parallelism: int, threads: int | None = None
    ) -> None:
        self._hasher = PasswordHash(
            (Argon2Hasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism),)
        )
        self.threads = threads or usable_cpus()
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="argon2")
        self._dummy: str | None = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def warm_up(self) -> None:
        """Hash the dummy password now, not on the first unknown-email sign-in: verified
        against when the email is unknown, so the response time does not tell which emails have
        accounts."""
        self._dummy = await self._run(self._hasher.hash, "not-a-real-password-only-for-timing")

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check a password; with no hash (unknown user) spend the same time and return False.
        A hash made with other parameters (older settings) still verifies: they are in it."""
        if password_hash is None:
            if self._dummy is None:
                await self.warm_up()
            assert self._dummy is not None
            await self._run(self._hasher.verify, password, self._dummy)
            return False
        return await self._run(self._hasher.verify, password, password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
