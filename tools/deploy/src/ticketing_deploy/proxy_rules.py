"""What the proxies in front of the services need of them (issue 23): a keep-alive that outlives
the proxy's, so a proxy never sends a request on a connection the service is closing.

ingress-nginx keeps an idle upstream connection for `upstream-keepalive-timeout` (its ConfigMap;
60 s unless set) and reuses it for the next request; uvicorn closes an idle connection after its
own `--timeout-keep-alive` (5 s unless set). With the service's shorter, a request the proxy sends
just as the service closes the connection is lost: an intermittent 502, which for a POST cannot be
retried. So every HTTP container sets UVICORN_TIMEOUT_KEEP_ALIVE above the proxy's timeout
(docs/deployment.md, "Keep-alive behind the proxy").
"""

from __future__ import annotations

from collections.abc import Iterable

from ticketing_deploy.manifests import Doc, of_kind, pod_spec
from ticketing_deploy.rules import container_env

__all__ = ["KEEP_ALIVE", "PROXY_KEEPALIVE_SECONDS", "keepalive_problems"]

KEEP_ALIVE = "UVICORN_TIMEOUT_KEEP_ALIVE"
# ingress-nginx's upstream-keepalive-timeout, as this project documents the controller's settings.
PROXY_KEEPALIVE_SECONDS = 60
# uvicorn's own default, what a container that sets nothing gets.
UVICORN_DEFAULT_KEEP_ALIVE = 5


def keepalive_problems(
    docs: list[Doc], http: Iterable[str], *, proxy_seconds: int = PROXY_KEEPALIVE_SECONDS
) -> list[str]:
    """Every HTTP container keeps an idle connection longer than the proxy in front of it."""
    found: list[str] = []
    http = set(http)
    for deployment in of_kind(docs, "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            if container["name"] not in http:
                continue
            raw = container_env(docs, container).get(KEEP_ALIVE, str(UVICORN_DEFAULT_KEEP_ALIVE))
            try:
                seconds = int(raw)
            except ValueError:
                found.append(f"{container['name']}: {KEEP_ALIVE}={raw!r} is not a whole number")
                continue
            if seconds <= proxy_seconds:
                found.append(
                    f"{container['name']}: keeps an idle connection {seconds} s, not longer than "
                    f"the proxy's {proxy_seconds} s ({KEEP_ALIVE})"
                )
    return found
