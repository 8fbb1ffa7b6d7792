"""Argon2 hashing through pwdlib, off the event loop.

Argon2 is deliberately slow (tens of ms, much memory); run on the loop it would stall every
other request of the process, so every call goes to a worker thread.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

from pwdlib import PasswordHash

T = TypeVar("T")


# Each Argon2 computation takes pwdlib's 64 MiB; asyncio's default thread pool would run up to
# 32 at once under a burst of sign-ins. A pool of its own, one thread per core, bounds that
# memory; the other requests queue instead of the process being killed for memory.
_POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="argon2")


async def _run(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)


@cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


@cache
def _dummy_hash() -> str:
    # Verified against when the email is unknown, so that case costs what a wrong password does
    # and the response time does not reveal which emails have accounts.
    return _hasher().hash("not-a-real-password-only-for-timing")


async def hash_password(password: str) -> str:
    return await _run(_hasher().hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash (unknown user) spend the same time and return False."""
    if password_hash is None:
        await _run(_hasher().verify, password, await _run(_dummy_hash))
        return False
    return await _run(_hasher().verify, password, password_hash)


async def warm_up() -> None:
    """Compute the dummy hash at start-up, not on the first unknown-email sign-in."""
    await _run(_dummy_hash)
