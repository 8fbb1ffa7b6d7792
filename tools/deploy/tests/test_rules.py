"""The manifests agree with the code and with each other; breaking one field breaks a check."""

from collections.abc import Callable
from typing import Any

import pytest

from ticketing_deploy import rules
from ticketing_deploy.manifests import OVERLAYS, Doc, config_map, load, named, pod_spec
from ticketing_deploy.settings_env import processes
from ticketing_devstack.routes import ROUTES
from ticketing_payments.settings import Settings as PaymentsSettings

PROCESSES = processes()
HTTP = [name for name, p in PROCESSES.items() if p.http]
SERVICES_ON_NATS = {"auth", "tickets", "orders", "payments", "expiration", "expiration-worker"}
CONTROLLER = f"ns:{rules.INGRESS_CONTROLLER_NAMESPACE}"
REACHABLE_FROM: dict[str, set[str]] = {
    # The web client calls the API services directly (by their Services), not through the edge.
    **{app: {CONTROLLER, "client"} for app in ("auth", "tickets", "orders", "payments")},
    "client": {CONTROLLER},
    **{
        f"{svc}-mongo": {svc, f"{svc}-mongo", f"{svc}-mongo-init"}
        for svc in ("auth", "tickets", "orders", "payments")
    },
    "nats": SERVICES_ON_NATS | {"nats"},
    "redis": {"auth", "expiration", "expiration-worker"},
}
# Production adds observability: the collector takes OTLP from the services, Prometheus (its
# own namespace) scrapes the services' pods.
PRODUCTION_REACHABLE_FROM: dict[str, set[str]] = {
    **REACHABLE_FROM,
    **{
        app: REACHABLE_FROM.get(app, set()) | {"ns:monitoring"}
        for app in ("auth", "tickets", "orders", "payments", "expiration")
    },
    "otel-collector": SERVICES_ON_NATS,
}
# And the Gateway API route's data plane (its Gateway's namespace) reaches the HTTP services.
PRODUCTION_REACHABLE_FROM |= {
    app: PRODUCTION_REACHABLE_FROM[app] | {"ns:gateway-system"}
    for app in ("auth", "tickets", "orders", "payments", "client")
}


def every_check(docs: list[Doc], overlay: str) -> list[str]:
    found = [
        *rules.env_problems(docs, PROCESSES),
        *rules.ingress_problems(docs, ROUTES),
        *rules.deployment_problems(docs, PROCESSES, read_only=overlay != "dev"),
        *rules.storage_problems(docs),
        *rules.replication_problems(docs),
        *rules.network_problems(
            docs, PRODUCTION_REACHABLE_FROM if overlay == "production" else REACHABLE_FROM
        ),
    ]
    if overlay == "production":
        found += rules.scale_problems(docs, HTTP)
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_check_passes(overlay: str) -> None:
    assert every_check(load(overlay), overlay) == []


def container(docs: list[Doc], deployment: str) -> Doc:
    first: Doc = pod_spec(named(docs, "Deployment", deployment))["containers"][0]
    return first


def drop_route(docs: list[Doc]) -> None:
    paths = named(docs, "Ingress", "ingress-service")["spec"]["rules"][0]["http"]["paths"]
    paths[:] = [p for p in paths if p["path"] != "/api/orders"]


def set_config(docs: list[Doc], name: str, key: str, value: str) -> None:
    config_map(docs, name)[key] = value


def drop_env(docs: list[Doc], deployment: str, name: str) -> None:
    env = container(docs, deployment)["env"]
    env[:] = [e for e in env if e["name"] != name]


def open_policy(docs: list[Doc]) -> None:
    policy = named(docs, "NetworkPolicy", "nats")
    policy["spec"]["ingress"].append({"from": [{"podSelector": {}}]})


def pvc_on_deployment(docs: list[Doc]) -> None:
    pod = pod_spec(named(docs, "Deployment", "orders"))
    pod["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "orders"}})


BREAKAGES: dict[str, tuple[str, Callable[[list[Doc]], Any], str]] = {
    "a readiness probe removed": (
        "production",
        lambda d: container(d, "orders").pop("readinessProbe"),
        "orders/orders: no readinessProbe",
    ),
    "a route removed": ("production", drop_route, "('/api/orders', 'orders')"),
    "a body limit unlike the services'": (
        "production",
        lambda d: named(d, "Ingress", "ingress-service")["metadata"]["annotations"].update(
            {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"}
        ),
        "proxy-body-size 1m",
    ),
    "a secret not passed": (
        "production",
        lambda d: drop_env(d, "payments", "STRIPE_KEY"),
        "payments: its settings do not validate",
    ),
    "a setting no service has": (
        "dev",
        lambda d: set_config(d, "orders-config", "ORDER_EXPIRY", "60"),
        "orders: ORDER_EXPIRY is not a setting of orders",
    ),
    "the database left on localhost": (
        "dev",
        lambda d: config_map(d, "tickets-config").pop("MONGO_URL"),
        "tickets: MONGO_URL is required and not set",
    ),
    "a writable root filesystem": (
        "production",
        lambda d: container(d, "auth")["securityContext"].update({"readOnlyRootFilesystem": False}),
        "auth/auth: root filesystem is not read-only",
    ),
    "no memory limit": (
        "production",
        lambda d: container(d, "client")["resources"]["limits"].pop("memory"),
        "client/client: no memory limit",
    ),
    "a grace period shorter than the drain": (
        "production",
        lambda d: pod_spec(named(d, "Deployment", "payments")).update(
            {"terminationGracePeriodSeconds": 30}
        ),
        "payments/payments: terminationGracePeriodSeconds 30",
    ),
    "a volume on a Deployment": ("dev", pvc_on_deployment, "orders: a Deployment with a"),
    "NATS open to every pod": ("dev", open_policy, "nats: reachable from"),
    "one replica in production": (
        "production",
        lambda d: named(d, "Deployment", "expiration-worker")["spec"].update({"replicas": 1}),
        "expiration-worker: fewer than 2 replicas",
    ),
    "replicas on a Deployment an HPA scales": (
        "production",
        lambda d: named(d, "Deployment", "tickets")["spec"].update({"replicas": 1}),
        "tickets: sets replicas (1) and a HorizontalPodAutoscaler scales it",
    ),
    "a replica set the init Job does not form": (
        "production",
        lambda d: named(d, "StatefulSet", "orders-mongo")["spec"].update({"replicas": 5}),
        "orders-mongo: its init Job does not form a set of 5 members",
    ),
    "streams on more servers than NATS has": (
        "dev",
        lambda d: set_config(d, "services-config", "NATS_STREAM_REPLICAS", "3"),
        "nats: streams on 3 servers of 1",
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_breaking_one_field_fails_a_check(breakage: str) -> None:
    overlay, damage, expected = BREAKAGES[breakage]
    docs = load(overlay)
    damage(docs)
    found = every_check(docs, overlay)
    assert any(expected in problem for problem in found), found


def test_the_nginx_body_limit_is_read_as_nginx_does() -> None:
    assert rules.nginx_bytes("64k") == 64 * 1024
    assert rules.nginx_bytes("1m") == 1024 * 1024
    assert rules.nginx_bytes("512") == 512


def test_payments_gets_to_finish_its_slowest_payment_before_it_is_stopped() -> None:
    """uvicorn's drain outlasts the slowest payment attempt (Stripe calls with their retries)."""
    slowest = PaymentsSettings.model_validate(
        {"stripe_key": rules.SECRET_PLACEHOLDERS["STRIPE_KEY"], "jwt_key": "k" * 48}
    ).slowest_payment_attempt_seconds
    payments = container(load("production"), "payments")
    env = {e["name"]: e.get("value") for e in payments["env"]}
    drain = env["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"]
    assert float(drain) > slowest
    ingress = named(load("production"), "Ingress", "ingress-service")
    timeout = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]
    assert float(timeout) > slowest
