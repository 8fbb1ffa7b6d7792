"""The consistency rules of the deployment files: each returns the problems it finds.

An empty list means the manifests agree with the code (settings, routes, limits) and with each
other; the tests also break one field at a time and see the rule object.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ticketing_common.settings import ServiceSettings
from ticketing_deploy.images import BUILD_ARGS, DOCKERFILE, Image
from ticketing_deploy.manifests import (
    ROOT,
    Doc,
    app_of,
    config_map,
    named,
    of_kind,
    pod_spec,
    workloads,
)
from ticketing_deploy.settings_env import UVICORN_ENV, Process, build, env_names, required

SECRET_PLACEHOLDERS = {
    # Long and random enough for the validators (JWT_KEY, CLIENT_CSRF_KEY: 32 bytes at least).
    "JWT_KEY": "k" * 48,
    "CLIENT_CSRF_KEY": "c" * 48,
    "STRIPE_KEY": "sk_test_" + "x" * 32,
}
HOST = "ticketing.dev"
IMAGE_PREFIX = "ticketing"  # our images: ticketing/auth, ...; anything else is third-party
TLS_SECRET = "ticketing-tls"  # noqa: S105  # the name of the Secret, not a secret
INGRESS_CONTROLLER_NAMESPACE = "ingress-nginx"
_NGINX_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
# A dependent environment variable's reference, `$(NAME)`, which Kubernetes replaces by the
# value of NAME when NAME is defined earlier in the container's env (REDIS_URL from the
# redis-secret password).
_ENV_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


# --- environment ----------------------------------------------------------------------------------


def container_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """What the container's process sees: its ConfigMaps, then its own env (secrets as
    placeholders, other references as a marker)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_map(docs, source["configMapRef"]["name"]))
        else:
            raise ValueError(f"unexpected envFrom {source}")
    for item in container.get("env", []):
        if "value" in item:
            value = str(item["value"])
            env[item["name"]] = _ENV_REFERENCE.sub(lambda m: env.get(m[1], m[0]), value)
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = SECRET_PLACEHOLDERS.get(item["name"], "secret")
        else:
            env[item["name"]] = "(from the pod)"
    return env


def referenced_env(container: Doc) -> set[str]:
    """The names the container's env values refer to as `$(NAME)`."""
    return {
        ref
        for item in container.get("env", [])
        if "value" in item
        for ref in _ENV_REFERENCE.findall(str(item["value"]))
    }


def env_problems(docs: list[Doc], processes: dict[str, Process]) -> list[str]:
    """Every required setting of every process is set by its Deployment, nothing unknown is set,
    and the settings it would start with are valid."""
    found: list[str] = []
    seen: set[str] = set()
    for deployment in of_kind(docs, "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            name = container["name"]
            if not container["image"].startswith(f"{IMAGE_PREFIX}/"):
                continue  # not ours (the OpenTelemetry Collector): configured by its own file
            process = processes.get(name)
            if process is None:
                found.append(f"{name}: a container with no known settings class")
                continue
            seen.add(name)
            env = container_env(docs, container)
            # What another variable is made from ($(NAME)) is its input, not a setting.
            inputs = referenced_env(container)
            known = set(env_names(process.settings)) | (UVICORN_ENV if process.http else set())
            known |= inputs
            for value in env.values():
                for unresolved in _ENV_REFERENCE.findall(value):
                    found.append(f"{name}: $({unresolved}) is not defined before it is used")
            for unknown in sorted(set(env) - known):
                found.append(f"{name}: {unknown} is not a setting of {name}")
            for missing in sorted(required(process) - set(env)):
                found.append(f"{name}: {missing} is required and not set")
            try:
                build(process, env)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                found.append(f"{name}: its settings do not validate: {exc}")
    found += [f"{name}: no Deployment runs it" for name in sorted(set(processes) - seen)]
    return found


# --- ingress --------------------------------------------------------------------------------------


def nginx_bytes(size: str) -> int:
    """An nginx size ("64k", "1m", "512") in bytes."""
    match = _NGINX_SIZE.match(size)
    if match is None:
        raise ValueError(f"not an nginx size: {size!r}")
    unit = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * unit


def ingress_problems(docs: list[Doc], routes: Iterable[tuple[str, str]]) -> list[str]:
    """The one Ingress routes exactly as the gateway's table, at ticketing.dev over TLS, to
    Services that select the right pods, with the services' own body limit."""
    found: list[str] = []
    ingresses = of_kind(docs, "Ingress")
    if len(ingresses) != 1:
        return [f"expected one Ingress, found {len(ingresses)}"]
    (ingress,) = ingresses
    spec = ingress["spec"]
    if spec.get("ingressClassName") != "nginx":
        found.append("ingressClassName is not nginx")
    tls = spec.get("tls", [])
    if [(t.get("secretName"), t.get("hosts")) for t in tls] != [(TLS_SECRET, [HOST])]:
        found.append(f"tls must be secret {TLS_SECRET} for {HOST}, is {tls}")
    rules = spec.get("rules", [])
    if [r.get("host") for r in rules] != [HOST]:
        return [*found, f"expected one rule for host {HOST}"]
    paths = rules[0]["http"]["paths"]
    table: set[tuple[str, str]] = set()
    for path in paths:
        backend = path["backend"]["service"]
        if path.get("pathType") != "Prefix":
            found.append(f"{path['path']}: pathType is not Prefix")
        if backend["port"].get("number") != 8000:
            found.append(f"{path['path']}: backend port is not 8000")
        table.add((path["path"], backend["name"].removesuffix("-srv")))
        services = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == backend["name"]]
        if not services:
            found.append(f"{path['path']}: no Service {backend['name']}")
        elif services[0]["spec"]["selector"].get("app") != backend["name"].removesuffix("-srv"):
            found.append(f"{backend['name']} does not select the {backend['name']} pods")
    wanted = set(routes)
    found += [f"route {r} is not in the Ingress" for r in sorted(wanted - table)]
    found += [f"the Ingress routes {r}, the gateway does not" for r in sorted(table - wanted)]
    annotations = ingress["metadata"].get("annotations", {})
    size = annotations.get("nginx.ingress.kubernetes.io/proxy-body-size")
    limit = ServiceSettings.model_fields["max_body_bytes"].default
    if size is None or nginx_bytes(size) != limit:
        found.append(f"proxy-body-size {size} is not the services' limit of {limit} bytes")
    return found


# --- workloads ------------------------------------------------------------------------------------


def _probe_path(probe: Doc | None) -> str | None:
    if not probe or "httpGet" not in probe:
        return None
    path: str = probe["httpGet"]["path"]
    return path


def security_problems(workload: Doc, *, read_only: bool = True) -> list[str]:
    name = workload["metadata"]["name"]
    found: list[str] = []
    pod = pod_spec(workload)
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        found.append(f"{name}: pod does not run as a non-root user")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        found.append(f"{name}: seccomp profile is not RuntimeDefault")
    for container in pod.get("initContainers", []) + pod["containers"]:
        csc = container.get("securityContext", {})
        where = f"{name}/{container['name']}"
        if csc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: privilege escalation is not disabled")
        if read_only and csc.get("readOnlyRootFilesystem") is not True:
            found.append(f"{where}: root filesystem is not read-only")
        if csc.get("capabilities", {}).get("drop") != ["ALL"]:
            found.append(f"{where}: does not drop ALL capabilities")
        if csc.get("privileged"):
            found.append(f"{where}: privileged")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    found.append(f"{where}: no {resource} {kind[:-1]}")
    return found


def graceful_seconds(container: Doc) -> float:
    """How long the container may take to stop: its preStop pause plus uvicorn's drain."""
    pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    drain = env.get("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN")
    return float(pause) + float(drain or 0)


def deployment_problems(
    docs: list[Doc], processes: dict[str, Process], *, read_only: bool = True
) -> list[str]:
    """Every Deployment: probes (HTTP ones on /readyz and /healthz), requests and limits, the
    hardened securityContext, a grace period longer than its drain."""
    found: list[str] = []
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        found += security_problems(deployment, read_only=read_only)
        pod = pod_spec(deployment)
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if not container.get(probe):
                    found.append(f"{where}: no {probe}")
            process = processes.get(container["name"])
            if process is not None and process.http:
                if _probe_path(container.get("readinessProbe")) != "/readyz":
                    found.append(f"{where}: readiness is not GET /readyz")
                if _probe_path(container.get("livenessProbe")) != "/healthz":
                    found.append(f"{where}: liveness is not GET /healthz")
                if "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN" not in {e["name"] for e in container["env"]}:
                    found.append(f"{where}: no bound on uvicorn's graceful shutdown")
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if grace <= graceful_seconds(container):
                found.append(
                    f"{where}: terminationGracePeriodSeconds {grace} is not longer than "
                    f"its graceful shutdown ({graceful_seconds(container):g} s)"
                )
    return found


def storage_problems(docs: list[Doc]) -> list[str]:
    """Whatever keeps data on a volume is a StatefulSet with its own claim per member; nothing
    else mounts a PersistentVolumeClaim."""
    found: list[str] = []
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        volumes = pod_spec(workload).get("volumes", [])
        if workload["kind"] != "StatefulSet" and any("persistentVolumeClaim" in v for v in volumes):
            found.append(f"{name}: a {workload['kind']} with a PersistentVolumeClaim")
        if workload["kind"] == "StatefulSet" and not workload["spec"].get("volumeClaimTemplates"):
            found.append(f"{name}: a StatefulSet with no volumeClaimTemplates")
    found += [
        f"{d['metadata']['name']}: a bare PersistentVolumeClaim"
        for d in of_kind(docs, "PersistentVolumeClaim")
    ]
    return found


# --- images ---------------------------------------------------------------------------------------


def image_problems(docs: list[Doc], built: Iterable[str]) -> list[str]:
    """Every image skaffold builds is used by a manifest, and every manifest image is built,
    unless it is a tagged upstream image (mongo, nats, redis)."""
    built = set(built)
    used = {c["image"] for w in workloads(docs) for c in pod_spec(w)["containers"]}
    found = [f"{image}: built, used by no manifest" for image in sorted(built - used)]
    for image in sorted(used - built):
        if image.startswith("ticketing/") or ":" not in image.rsplit("/", 1)[-1]:
            found.append(f"{image}: used by a manifest, built by no skaffold artifact")
    return found


def build_problems(images: Iterable[Image], members: Mapping[str, str]) -> list[str]:
    """Each app image is the root Dockerfile built with its three build args, and they name a
    workspace member (folder -> package), that member's package, and an app factory in that
    member's own sources."""
    found: list[str] = []
    for image in images:
        if image.dockerfile != DOCKERFILE:
            found.append(f"{image.name}: built from {image.dockerfile.relative_to(ROOT)}")
            continue
        if sorted(image.args) != sorted(BUILD_ARGS):
            found.append(f"{image.name}: build args {sorted(image.args)}, not {list(BUILD_ARGS)}")
            continue
        member, package, app = (image.args[name] for name in BUILD_ARGS)
        if member not in members:
            found.append(f"{image.name}: MEMBER {member} is not a workspace member")
            continue
        if package != members[member]:
            found.append(f"{image.name}: PACKAGE {package} is not {member}'s ({members[member]})")
        problem = _factory_problem(member, app)
        if problem:
            found.append(f"{image.name}: APP {app}: {problem}")
    return found


def _factory_problem(member: str, app: str) -> str | None:
    """Why uvicorn could not serve `module:factory` from the member's sources, if it could not."""
    module, _, factory = app.partition(":")
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        return f"no module {module} ({exc})"
    if ROOT / member / "src" not in Path(loaded.__file__ or "").resolve().parents:
        return f"{module} is not in {member}/src"
    if not callable(getattr(loaded, factory, None)):
        return f"{module} has no {factory or 'factory'}"
    return None


def build_agreement_problems(deployed: Iterable[Image], tested: Iterable[Image]) -> list[str]:
    """The compose system (tested) builds each app image skaffold deploys from the same
    Dockerfile and build args, and no app image (from the root Dockerfile) skaffold does not:
    the e2e suite runs what is deployed."""

    def recipe(image: Image) -> str:
        return json.dumps([str(image.dockerfile), image.args], sort_keys=True)

    skaffold = {recipe(i): i.name for i in deployed}
    compose = {recipe(i): i.name for i in tested if i.dockerfile == DOCKERFILE}
    found = [
        f"{skaffold[r]}: built by skaffold, not by compose"
        for r in skaffold.keys() - compose.keys()
    ]
    found += [
        f"{compose[r]}: built by compose, not by skaffold" for r in compose.keys() - skaffold.keys()
    ]
    return sorted(found)


# --- scale and replication ------------------------------------------------------------------------


def _selects(selector: Doc, app: str) -> bool:
    return bool(selector.get("matchLabels", {}).get("app") == app)


def scale_problems(docs: list[Doc], http: Iterable[str]) -> list[str]:
    """Production: 2+ pods of every Deployment, each under a PodDisruptionBudget, and every HTTP
    one under a HorizontalPodAutoscaler on CPU from 2 replicas. A Deployment an HPA scales sets
    no replicas (each apply would reset the HPA's count); one no HPA scales sets 2 or more."""
    found: list[str] = []
    pdbs = of_kind(docs, "PodDisruptionBudget")
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    scaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in hpas
        if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
    }
    for deployment in of_kind(docs, "Deployment"):
        name, app = deployment["metadata"]["name"], app_of(deployment)
        spec = deployment["spec"]
        mine = [h["spec"] for h in hpas if h["spec"]["scaleTargetRef"]["name"] == name]
        if name in scaled and "replicas" in spec:
            found.append(
                f"{name}: sets replicas ({spec['replicas']}) and a HorizontalPodAutoscaler "
                "scales it: each apply resets the HPA's count"
            )
        if name in scaled and any(h.get("minReplicas", 1) < 2 for h in mine):
            found.append(f"{name}: a HorizontalPodAutoscaler scales it from fewer than 2 pods")
        elif name not in scaled and (spec.get("replicas") or 1) < 2:
            found.append(f"{name}: fewer than 2 replicas")
        if not any(_selects(p["spec"]["selector"], app) for p in pdbs):
            found.append(f"{name}: no PodDisruptionBudget")
    for name in http:
        mine = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == name]
        cpu = [
            m
            for h in mine
            for m in h["spec"].get("metrics", [])
            if m.get("resource", {}).get("name") == "cpu"
        ]
        if not cpu or any(h["spec"].get("minReplicas", 1) < 2 for h in mine):
            found.append(f"{name}: no HorizontalPodAutoscaler on CPU from 2 replicas")
    return found


def _mongo_hosts(url: str) -> list[str]:
    return urlsplit(url).netloc.split(",")


def replication_problems(docs: list[Doc]) -> list[str]:
    """Each MongoDB's members, its init Job and its service's MONGO_URL agree; NATS has as many
    cluster routes as servers and at least as many servers as a stream's replicas."""
    found: list[str] = []
    for sts in of_kind(docs, "StatefulSet"):
        name = sts["metadata"]["name"]
        if not name.endswith("-mongo"):
            continue
        members = sts["spec"]["replicas"]
        hosts = [f"{name}-{i}.{name}:27017" for i in range(members)]
        job = named(docs, "Job", f"{name}-init")
        job_env = {e["name"]: e["value"] for e in pod_spec(job)["containers"][0]["env"]}
        if job_env.get("MONGO_SET") != name or job_env.get("MONGO_MEMBERS") != str(members):
            found.append(f"{name}: its init Job does not form a set of {members} members")
        service = name.removesuffix("-mongo")
        url = config_map(docs, f"{service}-config").get("MONGO_URL", "")
        if _mongo_hosts(url) != hosts or "replicaSet=rs0" not in url:
            found.append(f"{service}: MONGO_URL {url} is not the replica set {hosts}")
    nats = named(docs, "StatefulSet", "nats")
    servers = nats["spec"]["replicas"]
    cluster = config_map(docs, "nats-config")["cluster.conf"]
    routes = re.findall(r"nats://(nats-\d+)\.nats-headless:6222", cluster)
    if servers > 1 and routes != [f"nats-{i}" for i in range(servers)]:
        found.append(f"nats: {servers} servers but routes to {routes}")
    if servers == 1 and routes:
        found.append("nats: one server with cluster routes")
    stream_replicas = int(config_map(docs, "services-config")["NATS_STREAM_REPLICAS"])
    if stream_replicas > servers:
        found.append(f"nats: streams on {stream_replicas} servers of {servers}")
    if servers > 1 and stream_replicas != servers:
        found.append(f"nats: a cluster of {servers} keeping streams on {stream_replicas}")
    return found


# --- network policies -----------------------------------------------------------------------------


def _apps_of(selector: Doc, every: set[str]) -> set[str]:
    """The apps a podSelector picks among `every`."""
    if not selector:
        return set(every)
    apps = set(every)
    if "app" in selector.get("matchLabels", {}):
        apps &= {selector["matchLabels"]["app"]}
    elif selector.get("matchLabels"):
        apps = set()  # other labels: none of our apps is picked by them alone
    for expr in selector.get("matchExpressions", []):
        if expr["key"] != "app" or expr["operator"] != "In":
            raise ValueError(f"unsupported selector {expr}")
        apps &= set(expr["values"])
    return apps


def allowed_sources(docs: list[Doc]) -> dict[str, set[str]]:
    """For each of our apps, what may connect to it: apps of this namespace, or `ns:<name>` for
    another namespace's pods; `*` when no policy isolates it."""
    every = {app_of(w) for w in workloads(docs)}
    isolated: set[str] = set()
    sources: dict[str, set[str]] = {app: set() for app in every}
    for policy in of_kind(docs, "NetworkPolicy"):
        spec = policy["spec"]
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]):
            continue
        targets = _apps_of(spec["podSelector"], every)
        isolated |= targets
        for rule in spec.get("ingress", []):
            peers: set[str] = set()
            for peer in rule.get("from", [{}]):
                if "namespaceSelector" in peer:
                    labels = peer["namespaceSelector"].get("matchLabels", {})
                    peers.add("ns:" + labels.get("kubernetes.io/metadata.name", "*"))
                elif "ipBlock" in peer:
                    peers.add("*")
                else:
                    peers |= _apps_of(peer.get("podSelector", {}), every)
            for target in targets:
                sources[target] |= peers
    return {app: (sources[app] if app in isolated else {"*"}) for app in every}


def network_problems(docs: list[Doc], expected: dict[str, set[str]]) -> list[str]:
    """What may reach each app is exactly what `expected` says (apps not named: nothing)."""
    actual = allowed_sources(docs)
    found: list[str] = []
    for app in sorted(actual):
        want = expected.get(app, set())
        if actual[app] != want:
            found.append(f"{app}: reachable from {sorted(actual[app])}, expected {sorted(want)}")
    return found


def compose_env(compose: Doc, service: str) -> dict[str, str]:
    env: Any = compose["services"][service].get("environment", {})
    return {k: str(v) for k, v in env.items()}


def json_env(compose: Doc, service: str, key: str) -> Any:
    return json.loads(compose_env(compose, service)[key])
