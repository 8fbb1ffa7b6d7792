"""Argon2 hashing through pwdlib, off the event loop.

Argon2 is deliberately slow (tens of ms, much memory); run on the loop it would stall every
other request of the process, so every call goes to a worker thread.
"""

from __future__ import annotations

import asyncio
from functools import cache

from pwdlib import PasswordHash


@cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


@cache
def _dummy_hash() -> str:
    # Verified against when the email is unknown, so that case costs what a wrong password does
    # and the response time does not reveal which emails have accounts.
    return _hasher().hash("not-a-real-password-only-for-timing")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher().hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash (unknown user) spend the same time and return False."""
    if password_hash is None:
        await asyncio.to_thread(_hasher().verify, password, await asyncio.to_thread(_dummy_hash))
        return False
    return await asyncio.to_thread(_hasher().verify, password, password_hash)


async def warm_up() -> None:
    """Compute the dummy hash at start-up, not on the first unknown-email sign-in."""
    await asyncio.to_thread(_dummy_hash)
