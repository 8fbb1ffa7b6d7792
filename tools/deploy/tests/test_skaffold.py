"""skaffold.yaml: valid against skaffold's own schema (no skaffold binary here), one artifact per
image, each used by the manifests, file sync into what the images run."""

import json
import subprocess
from pathlib import Path

import pytest

from ticketing_deploy import manifests, rules
from ticketing_deploy.images import skaffold_images
from ticketing_deploy.manifests import OVERLAYS, ROOT, SKAFFOLD, load, load_yaml

SCHEMA = ROOT.parent / "shared" / "schemas" / "skaffold-v4beta13.json"
API_VERSION = "skaffold/v4beta13"


def check_jsonschema(document: Path) -> subprocess.CompletedProcess[str]:
    return manifests.check_jsonschema(SCHEMA, document)


@pytest.mark.skipif(not SCHEMA.exists(), reason=f"no {SCHEMA} (a checkout outside the workplace)")
def test_skaffold_yaml_matches_the_schema_of_its_api_version(tmp_path: Path) -> None:
    assert load_yaml(SKAFFOLD)["apiVersion"] == API_VERSION
    out = check_jsonschema(SKAFFOLD)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = load_yaml(SKAFFOLD)
    broken["build"]["artifacts"][0]["docker"]["dockerFile"] = "typo"
    path = tmp_path / "skaffold.yaml"
    path.write_text(json.dumps(broken))
    assert check_jsonschema(path).returncode != 0


def test_the_api_version_is_the_one_the_schema_is_for() -> None:
    assert load_yaml(SKAFFOLD)["apiVersion"] == API_VERSION


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_built_is_deployed_and_every_deployed_image_is_built(overlay: str) -> None:
    built = [i.name for i in skaffold_images()]
    assert len(built) == len(set(built))
    assert rules.image_problems(load(overlay), built) == []
    assert rules.image_problems(load(overlay), built[1:]) == [
        f"{built[0]}: used by a manifest, built by no skaffold artifact"
    ]
    assert rules.image_problems(load(overlay), [*built, "ticketing/nothing"]) == [
        "ticketing/nothing: built, used by no manifest"
    ]


def test_each_artifact_builds_from_the_root_and_syncs_the_sources_its_image_runs() -> None:
    config = load_yaml(SKAFFOLD)
    for artifact, image in zip(config["build"]["artifacts"], skaffold_images(), strict=True):
        assert artifact["context"] == "."
        assert image.dockerfile.exists()
        synced = {rule["src"].split("/**")[0] for rule in artifact["sync"]["manual"]}
        assert synced == image.copied_sources, artifact["image"]
        assert {rule["dest"] for rule in artifact["sync"]["manual"]} == {"/app"}
    assert config["manifests"]["kustomize"]["paths"] == ["infra/k8s/overlays/dev"]
    (profile,) = config["profiles"]
    assert profile["name"] == "production"
    assert profile["manifests"]["kustomize"]["paths"] == ["infra/k8s/overlays/production"]
