"""docker-compose.test.yml: valid against the compose specification, the whole system on real
MongoDB, each process given only settings it has, and the e2e runner pointed at it."""

import json
import subprocess

from ticketing_deploy import rules
from ticketing_deploy.images import DOCKERFILE, compose_images
from ticketing_deploy.manifests import COMPOSE, load_yaml, tool
from ticketing_deploy.settings_env import build, env_names, processes

COMPOSE_DOC = load_yaml(COMPOSE)
SERVICES = COMPOSE_DOC["services"]


def test_the_compose_file_matches_the_compose_specification() -> None:
    out = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_it_runs_every_image_on_real_mongodb_nats_and_redis() -> None:
    # Each from the root Dockerfile; test_images.py checks that skaffold builds the same.
    apps = {i.name for i in compose_images() if i.dockerfile == DOCKERFILE}
    assert apps == {"auth", "tickets", "orders", "payments", "expiration", "worker", "client"}
    assert SERVICES["mongo"]["image"].startswith("mongo:7")
    assert "--replSet" in SERVICES["mongo"]["command"]
    assert "-js" in SERVICES["nats"]["command"]
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["worker"]["command"] == ["python", "-m", "ticketing_expiration.worker"]
    for name in ("auth", "tickets", "orders", "payments"):
        assert "replicaSet=rs0" in SERVICES[name]["environment"]["MONGO_URL"]


def test_each_process_is_given_only_its_own_settings() -> None:
    procs = processes()
    for name, process in {**procs, "worker": procs["expiration-worker"]}.items():
        if name not in SERVICES:
            continue
        env = rules.compose_env(COMPOSE_DOC, name)
        unknown = set(env) - set(env_names(process.settings))
        assert unknown == set(), name
        build(process, env)  # and they are enough: the process would start (raises if not)


def test_the_runner_drives_the_compose_system_through_the_gateway() -> None:
    stack = rules.json_env(COMPOSE_DOC, "e2e", "E2E_STACK")
    assert stack["gateway"] == "http://gateway:8080"
    assert set(json.loads(stack["mongo"])) == {"auth", "tickets", "orders", "payments"}
    upstreams = rules.json_env(COMPOSE_DOC, "gateway", "GATEWAY_UPSTREAMS")
    assert set(upstreams) == {"auth", "tickets", "orders", "payments", "client"}
    assert SERVICES["e2e"]["build"]["dockerfile"] == "tools/devstack/Dockerfile"


def test_redis_has_a_password_and_every_redis_url_gives_it() -> None:
    """As in every topology: a client without the password is refused (redis-server's
    requirepass), and the processes that use Redis connect with it."""
    command = SERVICES["redis"]["command"]
    password = command[command.index("--requirepass") + 1]
    assert password.startswith("${REDIS_PASSWORD:-")  # from the environment, else a throwaway
    assert SERVICES["redis"]["environment"]["REDISCLI_AUTH"] == password  # the health check's
    urls = {
        name: rules.compose_env(COMPOSE_DOC, name)["REDIS_URL"]
        for name in ("auth", "expiration", "worker")
    }
    urls["e2e"] = rules.json_env(COMPOSE_DOC, "e2e", "E2E_STACK")["redis"]
    for name, url in urls.items():
        assert url.startswith(f"redis://:{password}@redis:6379/"), name
