"""Both overlays render with kustomize and are valid Kubernetes, strictly (no unknown field)."""

import subprocess
from pathlib import Path

import pytest
import yaml

from ticketing_deploy.manifests import KUBERNETES_VERSION, OVERLAYS, rendered, tool


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, "--quiet", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_is_valid_kubernetes(overlay: str, tmp_path: Path) -> None:
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(rendered(overlay))
    out = validate(path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_strict_validation_refuses_an_unknown_field(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(rendered("production")))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}  # a typo
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out = validate(path)
    assert out.returncode != 0
    assert "readinessProbes" in out.stdout + out.stderr
