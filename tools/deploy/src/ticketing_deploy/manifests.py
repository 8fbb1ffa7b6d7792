"""The repository's deployment files, loaded: kustomize overlays rendered by `kubectl kustomize`."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ticketing_testing.servers import find_binary

ROOT = Path(__file__).resolve().parents[4]
K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("dev", "production")
SKAFFOLD = ROOT / "skaffold.yaml"
COMPOSE = ROOT / "docker-compose.test.yml"
# The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.37.0"

Doc = dict[str, Any]


def tool(name: str) -> str:
    """A command-line tool of the virtualenv (a dev dependency's binary: kubectl, hadolint,
    ...), else from PATH; a missing one is an error, never a reason to skip a check."""
    return find_binary(name)


def check_jsonschema(schema: Path, document: Path) -> subprocess.CompletedProcess[str]:
    """`document` checked against the JSON Schema `schema` (check-jsonschema, from the venv)."""
    return subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(schema), str(document)],
        capture_output=True,
        text=True,
        check=False,
    )


@functools.cache
def rendered(overlay: str) -> str:
    """The overlay as `kubectl kustomize` renders it: what `kubectl apply -k` would send."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed: {out.stderr}")
    return out.stdout


def load(overlay: str) -> list[Doc]:
    """The overlay's resources, each a fresh copy (a test may break one)."""
    return [d for d in yaml.safe_load_all(rendered(overlay)) if d]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    (found,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return found


def workloads(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def app_of(workload: Doc) -> str:
    app: str = workload["spec"]["template"]["metadata"]["labels"]["app"]
    return app


def config_map(docs: list[Doc], name: str) -> dict[str, str]:
    """A ConfigMap's data, by its name with or without the hash suffix kustomize gives it."""
    (found,) = [
        d
        for d in of_kind(docs, "ConfigMap")
        if re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", d["metadata"]["name"])
    ]
    data: dict[str, str] = found["data"]
    return data


def load_yaml(path: Path) -> Doc:
    doc: Doc = yaml.safe_load(path.read_text())
    return doc
