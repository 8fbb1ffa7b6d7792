"""Dependencies of the auth routes, as Annotated aliases."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from ticketing_auth.runtime import AuthRuntime
from ticketing_common.auth import CurrentUser, OptionalUser
from ticketing_common.service import runtime_of

RuntimeDep = Annotated[AuthRuntime, Depends(runtime_of(AuthRuntime))]


async def client_address(request: Request) -> str:
    """The caller's address as the limits count it: the peer, or what a trusted proxy says the
    client was (FORWARDED_ALLOW_IPS, applied by the service factory). An IPv6 address counts as
    its /64: one subscriber is given a whole /64, so counting each address apart would let one
    guesser through as 2**64 of them."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d, an IPv4 client of a dual stack
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


ClientAddress = Annotated[str, Depends(client_address)]

__all__ = ["ClientAddress", "CurrentUser", "OptionalUser", "RuntimeDep"]
