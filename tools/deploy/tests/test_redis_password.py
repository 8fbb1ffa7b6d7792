"""Redis in the cluster has a password, from the redis-secret Secret the operator creates (as
jwt-secret): the server requires it, and every process that uses Redis gets a REDIS_URL built
from it, never a password in a manifest or on a command line."""

import pytest

from ticketing_deploy import rules
from ticketing_deploy.manifests import OVERLAYS, Doc, load, named, pod_spec
from ticketing_deploy.settings_env import processes

# Who uses Redis, and the database each one's URL names.
REDIS_USERS = {"auth": 1, "expiration": 0, "expiration-worker": 0}
FROM_THE_SECRET = {"secretKeyRef": {"name": "redis-secret", "key": "REDIS_PASSWORD"}}


def containers(docs: list[Doc]) -> dict[str, Doc]:
    return {
        c["name"]: c
        for kind in ("Deployment", "StatefulSet")
        for w in docs
        if w["kind"] == kind
        for c in pod_spec(w)["containers"]
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_redis_server_requires_the_secrets_password(overlay: str) -> None:
    docs = load(overlay)
    [redis] = pod_spec(named(docs, "StatefulSet", "redis"))["containers"]
    env = {item["name"]: item.get("valueFrom") for item in redis["env"]}
    assert env["REDIS_PASSWORD"] == FROM_THE_SECRET
    assert env["REDISCLI_AUTH"] == FROM_THE_SECRET  # the readiness probe authenticates
    script = " ".join(redis["command"])
    assert "requirepass %s" in script
    assert '"$REDIS_PASSWORD" > /run/redis/auth.conf' in script
    assert "exec redis-server /run/redis/auth.conf" in script
    assert "--requirepass" not in script  # not on the command line
    assert "--appendonly yes" in script  # still keeps pending expiries over a restart


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_redis_user_connects_with_the_secrets_password(overlay: str) -> None:
    docs = load(overlay)
    found = containers(docs)
    for name, db in REDIS_USERS.items():
        container = found[name]
        items = {item["name"]: item for item in container["env"]}
        assert items["REDIS_PASSWORD"]["valueFrom"] == FROM_THE_SECRET, name
        assert items["REDIS_URL"]["value"] == f"redis://:$(REDIS_PASSWORD)@redis:6379/{db}"
        # Kubernetes expands it only from a variable defined before it.
        order = [item["name"] for item in container["env"]]
        assert order.index("REDIS_PASSWORD") < order.index("REDIS_URL"), name
        env = rules.container_env(docs, container)
        assert env["REDIS_URL"] == f"redis://:secret@redis:6379/{db}", name
    # No other process is given it.
    for name, container in found.items():
        if name not in REDIS_USERS and name != "redis":
            assert "REDIS_PASSWORD" not in rules.container_env(docs, container), name


def test_a_reference_to_a_variable_not_defined_before_it_is_a_problem() -> None:
    docs = load("dev")
    container = pod_spec(named(docs, "Deployment", "auth"))["containers"][0]
    container["env"] = [i for i in container["env"] if i["name"] != "REDIS_PASSWORD"]
    found = rules.env_problems(docs, processes())
    assert "auth: $(REDIS_PASSWORD) is not defined before it is used" in found
