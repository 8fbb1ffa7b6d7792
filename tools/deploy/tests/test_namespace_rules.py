"""Issue 23, item 10: every object in the `ticketing` Namespace, which enforces Pod Security
`restricted`, and every pod template passes that profile; breaking one field fails a check."""

from collections.abc import Callable
from typing import Any

import pytest

from ticketing_deploy import namespace_rules
from ticketing_deploy.manifests import OVERLAYS, Doc, load, named, pod_spec
from ticketing_deploy.namespace_rules import NAMESPACE, namespace_problems, restricted_problems


def every_check(docs: list[Doc]) -> list[str]:
    return [*namespace_problems(docs), *restricted_problems(docs)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_in_the_restricted_namespace(overlay: str) -> None:
    docs = load(overlay)
    assert every_check(docs) == []
    (namespace,) = [d for d in docs if d["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == NAMESPACE


def test_the_pod_security_version_is_pinned_to_the_validated_kubernetes() -> None:
    assert namespace_rules.POD_SECURITY_VERSION == "v1.37"
    labels = namespace_rules.POD_SECURITY_LABELS
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn-version"] == "v1.37"


def namespace(docs: list[Doc]) -> Doc:
    return named(docs, "Namespace", NAMESPACE)


def container(docs: list[Doc], kind: str, name: str) -> Doc:
    first: Doc = pod_spec(named(docs, kind, name))["containers"][0]
    return first


def drop_namespace(docs: list[Doc]) -> None:
    docs.remove(namespace(docs))


BREAKAGES: dict[str, tuple[str, Callable[[list[Doc]], Any], str]] = {
    "no Namespace": ("dev", drop_namespace, "no Namespace ticketing"),
    "enforce only baseline": (
        "production",
        lambda d: namespace(d)["metadata"]["labels"].update(
            {"pod-security.kubernetes.io/enforce": "baseline"}
        ),
        "pod-security.kubernetes.io/enforce is 'baseline', not 'restricted'",
    ),
    "an unpinned version": (
        "dev",
        lambda d: namespace(d)["metadata"]["labels"].pop(
            "pod-security.kubernetes.io/audit-version"
        ),
        "pod-security.kubernetes.io/audit-version is None",
    ),
    "an object in default": (
        "dev",
        lambda d: named(d, "NetworkPolicy", "default-deny-ingress")["metadata"].pop("namespace"),
        "NetworkPolicy default-deny-ingress: in namespace (none: the default)",
    ),
    "the collector elsewhere": (
        "production",
        lambda d: named(d, "Deployment", "otel-collector")["metadata"].update(
            {"namespace": "monitoring"}
        ),
        "Deployment otel-collector: in namespace monitoring, not ticketing",
    ),
    "a StatefulSet escalating": (
        "dev",
        lambda d: container(d, "StatefulSet", "nats")["securityContext"].update(
            {"allowPrivilegeEscalation": True}
        ),
        "StatefulSet nats: nats: allowPrivilegeEscalation is not false",
    ),
    "a Job as root": (
        "dev",
        lambda d: pod_spec(named(d, "Job", "auth-mongo-init"))["securityContext"].pop(
            "runAsNonRoot"
        ),
        "Job auth-mongo-init: runAsNonRoot is not true",
    ),
    "a StatefulSet without seccomp": (
        "production",
        lambda d: pod_spec(named(d, "StatefulSet", "redis"))["securityContext"].pop(
            "seccompProfile"
        ),
        "StatefulSet redis: no RuntimeDefault or Localhost seccomp profile",
    ),
    "capabilities kept": (
        "dev",
        lambda d: container(d, "StatefulSet", "orders-mongo")["securityContext"].pop(
            "capabilities"
        ),
        "StatefulSet orders-mongo: mongod: does not drop ALL capabilities",
    ),
    "a capability added": (
        "dev",
        lambda d: container(d, "Deployment", "orders")["securityContext"]["capabilities"].update(
            {"add": ["NET_ADMIN"]}
        ),
        "Deployment orders/orders: adds capabilities ['NET_ADMIN']",
    ),
    "a container overriding the pod's user": (
        "production",
        lambda d: container(d, "Deployment", "auth")["securityContext"].update({"runAsUser": 0}),
        "Deployment auth/auth: runAsUser 0",
    ),
    "a container's seccomp Unconfined": (
        "dev",
        lambda d: container(d, "Deployment", "client")["securityContext"].update(
            {"seccompProfile": {"type": "Unconfined"}}
        ),
        "Deployment client/client: seccomp profile Unconfined",
    ),
    "the host network": (
        "dev",
        lambda d: pod_spec(named(d, "Deployment", "tickets")).update({"hostNetwork": True}),
        "Deployment tickets: hostNetwork is true",
    ),
    "a hostPath volume": (
        "dev",
        lambda d: pod_spec(named(d, "StatefulSet", "nats"))["volumes"].append(
            {"name": "host", "hostPath": {"path": "/var/run"}}
        ),
        "StatefulSet nats: volume host: ['hostPath']",
    ),
    "a host port": (
        "dev",
        lambda d: container(d, "StatefulSet", "redis")["ports"][0].update({"hostPort": 6379}),
        "StatefulSet redis/redis: hostPort 6379",
    ),
    "privileged": (
        "production",
        lambda d: container(d, "Deployment", "payments")["securityContext"].update(
            {"privileged": True}
        ),
        "Deployment payments/payments: privileged",
    ),
    "an unsafe sysctl": (
        "dev",
        lambda d: pod_spec(named(d, "Deployment", "auth"))["securityContext"].update(
            {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}
        ),
        "Deployment auth: sysctl net.core.somaxconn is not in the safe set",
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_breaking_one_field_fails_a_check(breakage: str) -> None:
    overlay, damage, expected = BREAKAGES[breakage]
    docs = load(overlay)
    damage(docs)
    found = every_check(docs)
    assert any(expected in problem for problem in found), found


def test_a_cronjob_and_a_bare_pod_are_checked_too() -> None:
    pod = {"containers": [{"name": "c", "securityContext": {}}]}
    docs: list[Doc] = [
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": pod},
        {
            "kind": "CronJob",
            "metadata": {"name": "cj"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}},
        },
    ]
    found = restricted_problems(docs)
    assert "Pod p: runAsNonRoot is not true (on the pod or every container)" in found
    assert "CronJob cj: c: allowPrivilegeEscalation is not false" in found


def test_restricted_reads_the_containers_when_the_pod_says_nothing() -> None:
    """The profile accepts runAsNonRoot and seccomp set on every container instead of the pod."""
    context = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    }
    docs: list[Doc] = [
        {
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "template": {"spec": {"containers": [{"name": "c", "securityContext": context}]}}
            },
        }
    ]
    assert restricted_problems(docs) == []
