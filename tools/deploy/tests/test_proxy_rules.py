"""Every HTTP container outlives the proxy's keep-alive; a container that sets nothing (uvicorn's
5 s) or too little is caught."""

import copy

import pytest

from ticketing_deploy.manifests import OVERLAYS, Doc, load, pod_spec
from ticketing_deploy.proxy_rules import KEEP_ALIVE, keepalive_problems
from ticketing_deploy.settings_env import processes

HTTP = [name for name, p in processes().items() if p.http]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_http_container_outlives_the_proxy_s_keep_alive(overlay: str) -> None:
    assert keepalive_problems(load(overlay), HTTP) == []


def _without(docs: list[Doc], app: str, value: str | None) -> list[Doc]:
    docs = copy.deepcopy(docs)
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == app:
            (container,) = [c for c in pod_spec(doc)["containers"] if c["name"] == app]
            env = [e for e in container.get("env", []) if e["name"] != KEEP_ALIVE]
            if value is not None:
                env.append({"name": KEEP_ALIVE, "value": value})
            container["env"] = env
    return docs


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "orders: keeps an idle connection 5 s, not longer than the proxy's 60 s"),
        ("60", "orders: keeps an idle connection 60 s, not longer than the proxy's 60 s"),
        ("soon", "orders: UVICORN_TIMEOUT_KEEP_ALIVE='soon' is not a whole number"),
    ],
)
def test_a_keep_alive_the_proxy_outlives_is_caught(value: str | None, problem: str) -> None:
    found = keepalive_problems(_without(load("production"), "orders", value), HTTP)
    assert [p.split(" (")[0] for p in found] == [problem]
