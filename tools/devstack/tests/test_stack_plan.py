"""The local stack's plan (`Stack.plan`): for a given configuration, exactly the processes, command
lines, environments, ports and URLs it gave before it was cut into one function per kind of
process. The expected plans were captured from that earlier function (stack_plan.json).

Everything that differs from one machine or run to the next is pinned or written as a
placeholder: the ports are handed out in order from 20000, the server binaries are /bin/<name>,
the Redis password is fixed, and the data folder and the interpreter are `{data}` and `{python}`.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import TypedDict

import pytest

from ticketing_devstack import stack as stack_module
from ticketing_devstack.stack import PASSTHROUGH, SERVICES, Stack
from ticketing_testing import servers

EXPECTED = Path(__file__).parent / "fixtures" / "stack_plan.json"

# Configurations of the environment `make up`, the e2e tests and the bench start from. Of the
# variables PASSTHROUGH names only STRIPE_KEY is among them (it also decides whether the fake
# Stripe runs): which ones it names is the settings' business, and
# `test_every_passthrough_variable_reaches_the_services` covers them all.
CONFIGURATIONS: dict[str, dict[str, str]] = {
    # Nothing given: our own Mongo servers, nats-server, redis-server and fake Stripe.
    "own servers": {"PATH": "/usr/bin", "CLIENT_CSRF_KEY": "csrf-key"},
    # Every server given (as docker-compose.test.yml's e2e runner does), and the client's and
    # the tracing's settings.
    "given servers": {
        "PATH": "/usr/bin",
        "MONGO_URL": "mongodb://mongo:27017",
        "NATS_URL": "nats://nats:4222",
        "REDIS_URL": "redis://redis:6379/0",
        "STRIPE_KEY": "sk_test_given",
        "ENVIRONMENT": "production",
        "COOKIE_SECURE": "true",
        "TRACES_DIR": "/var/traces",
        "OTEL_BSP_SCHEDULE_DELAY": "1000",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_given",
    },
}


class PlannedProc(TypedDict):
    name: str
    args: list[str]
    env: dict[str, str]
    port: int | None
    ready_path: str | None


class Plan(TypedDict):
    procs: list[PlannedProc]
    urls: dict[str, str]


def _pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = itertools.count(20000)
    monkeypatch.setattr(stack_module, "free_port", lambda: next(ports))
    monkeypatch.setattr(stack_module, "redis_password", lambda folder: "redis-password")
    monkeypatch.setattr(servers, "find_binary", lambda name: f"/bin/{name}")
    monkeypatch.setattr(servers, "redis_binary", lambda: "/bin/redis-server")


def _placeholders(text: str, data_dir: Path) -> str:
    return text.replace(str(data_dir), "{data}").replace(sys.executable, "{python}")


def plan_of(env: dict[str, str], data_dir: Path) -> Plan:
    """The plan for `env`, with what differs between machines as placeholders."""
    stack = Stack(data_dir, gateway_port=8080, env=env)
    procs = [
        PlannedProc(
            name=proc.name,
            args=proc.args,
            env=proc.env,
            port=proc.port,
            ready_path=proc.ready_path,
        )
        for proc in stack.plan()
    ]
    plan = Plan(procs=procs, urls=stack.urls)
    normalized: Plan = json.loads(_placeholders(json.dumps(plan), data_dir))
    return normalized


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_the_plan_is_what_it_was(
    configuration: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pinned(monkeypatch)
    expected: dict[str, Plan] = json.loads(EXPECTED.read_text())
    assert plan_of(CONFIGURATIONS[configuration], tmp_path) == expected[configuration]


def test_every_passthrough_variable_reaches_the_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pinned(monkeypatch)
    given = {name: f"value of {name}" for name in PASSTHROUGH}
    plan = plan_of({"PATH": "/usr/bin", **given}, tmp_path)
    by_name = {proc["name"]: proc for proc in plan["procs"]}
    for name in (*SERVICES, "worker"):
        env = by_name[name]["env"]
        assert {k: env.get(k) for k in given} == given, name


if __name__ == "__main__":
    # Writes stack_plan.json from the plan as it is now: run once, before changing the plan.
    import tempfile

    captured: dict[str, Plan] = {}
    for configuration, env in sorted(CONFIGURATIONS.items()):
        with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp:
            _pinned(patch)
            captured[configuration] = plan_of(env, Path(tmp))
    EXPECTED.parent.mkdir(exist_ok=True)
    EXPECTED.write_text(json.dumps(captured, indent=2, sort_keys=True) + "\n")
