"""Issue 23, item 10: Ticketing lives in its own Namespace, `ticketing`, which enforces the Pod
Security Standard `restricted`; the default-deny NetworkPolicies then isolate only this system.

`namespace_problems` checks the rendered overlay: the Namespace is there with the Pod Security
labels (enforce, audit and warn, each pinned to the Kubernetes minor the manifests are validated
against), and every namespaced object is in it. `restricted_problems` checks each pod template
as the `restricted` admission would. `rules.security_problems` already holds the Deployments to
runAsNonRoot, a pod-level RuntimeDefault seccomp profile, no privilege escalation and dropping
ALL capabilities; what is added here is what it does not see: those four on the other workloads
(StatefulSets, Jobs), and the rest of the profile (host namespaces and ports, volume types,
added capabilities, a container's own runAsNonRoot/runAsUser/seccomp that override the pod's,
privileged, /proc mount, sysctls, SELinux, AppArmor, host probes).
"""

from __future__ import annotations

from collections.abc import Iterator

from ticketing_deploy.manifests import KUBERNETES_VERSION, Doc, of_kind

NAMESPACE = "ticketing"
# Pinned: a newer Kubernetes does not change what the Namespace admits until this is bumped.
POD_SECURITY_VERSION = "v" + ".".join(KUBERNETES_VERSION.split(".")[:2])
POD_SECURITY_LABELS = {
    **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")},
    **{
        f"pod-security.kubernetes.io/{mode}-version": POD_SECURITY_VERSION
        for mode in ("enforce", "audit", "warn")
    },
}
# The kinds that have no namespace (what a kustomization here could hold).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "GatewayClass",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
# What `restricted` allows (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
ALLOWED_ADDED_CAPABILITIES = {"NET_BIND_SERVICE"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
_VOLUME_KEYS = {"name"}


def namespace_problems(docs: list[Doc]) -> list[str]:
    """The `ticketing` Namespace with the restricted labels, and every namespaced object in it."""
    found: list[str] = []
    namespaces = {d["metadata"]["name"]: d for d in of_kind(docs, "Namespace")}
    if NAMESPACE not in namespaces:
        found.append(f"no Namespace {NAMESPACE}")
    else:
        labels = namespaces[NAMESPACE]["metadata"].get("labels", {})
        for key, value in POD_SECURITY_LABELS.items():
            if labels.get(key) != value:
                found.append(f"Namespace {NAMESPACE}: {key} is {labels.get(key)!r}, not {value!r}")
    for other in sorted(set(namespaces) - {NAMESPACE}):
        found.append(f"Namespace {other}: only {NAMESPACE} belongs to Ticketing")
    for doc in docs:
        if doc["kind"] in CLUSTER_SCOPED:
            continue
        where = doc["metadata"].get("namespace")
        if where != NAMESPACE:
            found.append(
                f"{doc['kind']} {doc['metadata']['name']}: in namespace "
                f"{where or '(none: the default)'}, not {NAMESPACE}"
            )
    return found


def pod_templates(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """Every pod spec the overlay creates, with the object that holds it."""
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "Pod":
            yield doc, spec
        elif doc["kind"] == "CronJob":
            yield doc, spec["jobTemplate"]["spec"]["template"]["spec"]
        elif "spec" in spec.get("template", {}):
            yield doc, spec["template"]["spec"]


def restricted_problems(docs: list[Doc]) -> list[str]:
    """What the `restricted` Pod Security admission would refuse, for every pod template."""
    found: list[str] = []
    for holder, pod in pod_templates(docs):
        name = f"{holder['kind']} {holder['metadata']['name']}"
        if holder["kind"] != "Deployment":  # rules.security_problems checks the Deployments
            found += [f"{name}: {p}" for p in _core_problems(pod)]
        found += [f"{name}: {p}" for p in _pod_problems(pod)]
        for container in _containers(pod):
            found += [f"{name}/{container['name']}: {p}" for p in _container_problems(container)]
    return found


def _containers(pod: Doc) -> list[Doc]:
    every: list[Doc] = [
        *pod.get("initContainers", []),
        *pod.get("containers", []),
        *pod.get("ephemeralContainers", []),
    ]
    return every


def _core_problems(pod: Doc) -> list[str]:
    """runAsNonRoot and the seccomp profile (the pod's or every container's), no privilege
    escalation, ALL capabilities dropped: as `restricted` reads them."""
    found: list[str] = []
    psc = pod.get("securityContext", {})
    containers = _containers(pod)
    contexts = [c.get("securityContext", {}) for c in containers]
    if not (
        psc.get("runAsNonRoot") is True or all(c.get("runAsNonRoot") is True for c in contexts)
    ):
        found.append("runAsNonRoot is not true (on the pod or every container)")
    pod_seccomp = psc.get("seccompProfile", {}).get("type")
    if pod_seccomp not in SECCOMP_TYPES and not all(
        c.get("seccompProfile", {}).get("type") in SECCOMP_TYPES for c in contexts
    ):
        found.append("no RuntimeDefault or Localhost seccomp profile (pod or every container)")
    for container, csc in zip(containers, contexts, strict=True):
        if csc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{container['name']}: allowPrivilegeEscalation is not false")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []):
            found.append(f"{container['name']}: does not drop ALL capabilities")
    return found


def _pod_problems(pod: Doc) -> list[str]:
    found: list[str] = []
    found += [f"{host} is true" for host in ("hostNetwork", "hostPID", "hostIPC") if pod.get(host)]
    for volume in pod.get("volumes", []):
        kinds = set(volume) - _VOLUME_KEYS
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds - ALLOWED_VOLUMES)}")
    psc = pod.get("securityContext", {})
    found += _context_problems(psc)
    for sysctl in psc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl['name']} is not in the safe set")
    if psc.get("appArmorProfile", {}).get("type") == "Unconfined":
        found.append("AppArmor profile Unconfined")
    return found


def _container_problems(container: Doc) -> list[str]:
    csc = container.get("securityContext", {})
    found = _context_problems(csc)
    if csc.get("privileged") is True:
        found.append("privileged")
    if csc.get("runAsNonRoot") is False:
        found.append("runAsNonRoot false overrides the pod's")
    added = set(csc.get("capabilities", {}).get("add", []))
    if not added <= ALLOWED_ADDED_CAPABILITIES:
        found.append(f"adds capabilities {sorted(added - ALLOWED_ADDED_CAPABILITIES)}")
    if csc.get("procMount", "Default") != "Default":
        found.append(f"procMount {csc['procMount']}")
    if csc.get("appArmorProfile", {}).get("type") == "Unconfined":
        found.append("AppArmor profile Unconfined")
    found += [f"hostPort {p['hostPort']}" for p in container.get("ports", []) if p.get("hostPort")]
    for hook in ("livenessProbe", "readinessProbe", "startupProbe"):
        found += _host_field(container.get(hook) or {}, hook)
    for phase, handler in container.get("lifecycle", {}).items():
        found += _host_field(handler or {}, f"lifecycle.{phase}")
    return found


def _context_problems(context: Doc) -> list[str]:
    """What a pod's or a container's securityContext may not say under `restricted`."""
    found: list[str] = []
    if context.get("runAsUser") == 0:
        found.append("runAsUser 0")
    seccomp = context.get("seccompProfile", {}).get("type")
    if seccomp is not None and seccomp not in SECCOMP_TYPES:
        found.append(f"seccomp profile {seccomp}")
    if context.get("windowsOptions", {}).get("hostProcess") is True:
        found.append("a Windows HostProcess")
    selinux = context.get("seLinuxOptions", {})
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"seLinuxOptions {selinux}")
    return found


def _host_field(handler: Doc, where: str) -> list[str]:
    return [
        f"{where} sets {kind}.host"
        for kind in ("httpGet", "tcpSocket")
        if handler.get(kind, {}).get("host")
    ]
