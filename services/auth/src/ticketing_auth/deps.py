"""Dependencies of the auth routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ticketing_auth.runtime import AuthRuntime
from ticketing_common.auth import CurrentUser, OptionalUser
from ticketing_common.service import runtime_of

RuntimeDep = Annotated[AuthRuntime, Depends(runtime_of(AuthRuntime))]


async def client_address(request: Request) -> str:
    """The caller's address: the peer, or what a trusted proxy says the client was
    (FORWARDED_ALLOW_IPS, applied by the service factory)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]

__all__ = ["ClientAddress", "CurrentUser", "OptionalUser", "RuntimeDep"]
