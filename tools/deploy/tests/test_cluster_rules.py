"""The rendered overlays resolve on a real cluster: each StatefulSet's members have their own
DNS names (a headless governing Service), and HorizontalPodAutoscalers keep the count they set."""

from collections.abc import Callable

import pytest
import yaml

from ticketing_deploy import cluster_rules, rules
from ticketing_deploy.manifests import K8S, OVERLAYS, Doc, load, named, of_kind
from ticketing_deploy.settings_env import processes

HTTP = [name for name, p in processes().items() if p.http]

STATEFUL = {"auth-mongo", "tickets-mongo", "orders-mongo", "payments-mongo", "nats", "redis"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_statefulset_has_a_headless_governing_service(overlay: str) -> None:
    docs = load(overlay)
    assert {s["metadata"]["name"] for s in of_kind(docs, "StatefulSet")} == STATEFUL
    assert cluster_rules.headless_problems(docs) == []


def test_the_files_say_none_the_string() -> None:
    """What the files say, parsed as YAML (where `null` and `None` differ), not only rendered."""
    for path in sorted((K8S / "base" / "data").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Service" and "clusterIP" in doc["spec"]:
                assert doc["spec"]["clusterIP"] == "None", path


def set_cluster_ip(value: object) -> Callable[[list[Doc]], None]:
    def damage(docs: list[Doc]) -> None:
        named(docs, "Service", "auth-mongo")["spec"]["clusterIP"] = value

    return damage


def drop_cluster_ip(docs: list[Doc]) -> None:
    named(docs, "Service", "redis")["spec"].pop("clusterIP", None)


def govern_by_the_client_service(docs: list[Doc]) -> None:
    named(docs, "StatefulSet", "nats")["spec"]["serviceName"] = "nats"


def govern_by_nothing(docs: list[Doc]) -> None:
    named(docs, "StatefulSet", "orders-mongo")["spec"]["serviceName"] = "orders-db"


HEADLESS_BREAKAGES: dict[str, tuple[Callable[[list[Doc]], None], str]] = {
    "a YAML null": (
        set_cluster_ip(yaml.safe_load("clusterIP: null")["clusterIP"]),
        "auth-mongo: its Service auth-mongo is not headless: clusterIP is None",
    ),
    "a cluster IP": (set_cluster_ip("10.96.0.10"), "clusterIP is '10.96.0.10'"),
    "no clusterIP": (drop_cluster_ip, "redis: its Service redis is not headless"),
    "the client Service": (govern_by_the_client_service, "nats: its Service nats is not headless"),
    "no such Service": (govern_by_nothing, "orders-mongo: its serviceName 'orders-db' names no"),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("breakage", HEADLESS_BREAKAGES)
def test_a_service_that_is_not_headless_fails(overlay: str, breakage: str) -> None:
    damage, expected = HEADLESS_BREAKAGES[breakage]
    docs = load(overlay)
    damage(docs)
    found = cluster_rules.headless_problems(docs)
    assert any(expected in problem for problem in found), found


# --- scale: HorizontalPodAutoscalers own the count of what they scale ------------------------


def hpa_targets(docs: list[Doc]) -> set[str]:
    return {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")}


def test_production_deployments_under_an_hpa_set_no_replicas() -> None:
    docs = load("production")
    scaled = hpa_targets(docs)
    assert scaled == set(HTTP)
    for deployment in of_kind(docs, "Deployment"):
        spec = deployment["spec"]
        if deployment["metadata"]["name"] in scaled:
            assert "replicas" not in spec, deployment["metadata"]["name"]
        else:
            assert spec.get("replicas", 1) >= 2, deployment["metadata"]["name"]
    assert rules.scale_problems(docs, HTTP) == []


def hpa(docs: list[Doc], name: str) -> Doc:
    (found,) = [
        h
        for h in of_kind(docs, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == name
    ]
    return found


def drop_hpa(docs: list[Doc], name: str) -> None:
    docs.remove(hpa(docs, name))


def scale_the_worker_from_one(docs: list[Doc]) -> None:
    """An HPA on a Deployment that is not HTTP (no CPU requirement) still starts from 2 pods."""
    worker = named(docs, "Deployment", "expiration-worker")
    worker["spec"].pop("replicas")
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "expiration-worker"}
    docs.append(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "expiration-worker"},
            "spec": {"scaleTargetRef": target, "minReplicas": 1, "maxReplicas": 4},
        }
    )


SCALE_BREAKAGES: dict[str, tuple[Callable[[list[Doc]], None], str]] = {
    "replicas on a Deployment an HPA scales": (
        lambda d: named(d, "Deployment", "tickets")["spec"].update({"replicas": 2}),
        "tickets: sets replicas (2) and a HorizontalPodAutoscaler scales it",
    ),
    "replicas: null on a Deployment an HPA scales": (
        lambda d: named(d, "Deployment", "orders")["spec"].update({"replicas": None}),
        "orders: sets replicas (None)",
    ),
    "an HPA from one pod": (
        lambda d: hpa(d, "auth")["spec"].update({"minReplicas": 1}),
        "auth: no HorizontalPodAutoscaler on CPU from 2 replicas",
    ),
    "an HPA from the default of one pod": (
        lambda d: hpa(d, "client")["spec"].pop("minReplicas"),
        "client: no HorizontalPodAutoscaler on CPU from 2 replicas",
    ),
    "no HPA and no replicas": (
        lambda d: drop_hpa(d, "payments"),
        "payments: fewer than 2 replicas",
    ),
    "one pod of a Deployment no HPA scales": (
        lambda d: named(d, "Deployment", "expiration-worker")["spec"].update({"replicas": 1}),
        "expiration-worker: fewer than 2 replicas",
    ),
    "no replicas on a Deployment no HPA scales": (
        lambda d: named(d, "Deployment", "expiration-worker")["spec"].pop("replicas"),
        "expiration-worker: fewer than 2 replicas",
    ),
    "an HPA from one pod of a worker": (
        scale_the_worker_from_one,
        "expiration-worker: a HorizontalPodAutoscaler scales it from fewer than 2 pods",
    ),
}


@pytest.mark.parametrize("breakage", SCALE_BREAKAGES)
def test_a_count_that_fights_or_lacks_an_hpa_fails(breakage: str) -> None:
    damage, expected = SCALE_BREAKAGES[breakage]
    docs = load("production")
    damage(docs)
    found = rules.scale_problems(docs, HTTP)
    assert any(expected in problem for problem in found), found
