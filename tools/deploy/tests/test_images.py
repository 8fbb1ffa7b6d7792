"""The Dockerfiles: hadolint finds nothing, and every image is built the same way."""

import re
import subprocess
from pathlib import Path

import pytest

from ticketing_deploy.images import dockerfiles, skaffold_images
from ticketing_deploy.manifests import ROOT, tool

DOCKERFILES = dockerfiles()
IMAGES = skaffold_images()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    out = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_does_fail_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /app && pip install uv\n")
    out = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "DL3006" in out.stdout  # no tag on the base image


def test_every_image_is_built_the_same_way() -> None:
    """The service images differ only in what they install and run: one recipe, six copies."""

    def generic(image_text: str, package: str, src: str, module: str) -> str:
        text = image_text.replace(package, "<package>").replace(src, "<src>")
        return re.sub(
            r"^# The .*$", "# The <image>.", text.replace(module, "<module>"), count=1, flags=re.M
        )

    shapes = {
        image.name: generic(
            image.text,
            image.package,
            next(iter(image.copied_sources - {"common/src"})),
            image.package.replace("-", "_"),
        )
        for image in IMAGES
    }
    by_shape: dict[str, list[str]] = {}
    for name, shape in shapes.items():
        by_shape.setdefault(re.sub(r"(?m)^# The same image runs.*\n", "", shape), []).append(name)
    assert len(by_shape) == 1, list(by_shape.values())


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_images_install_the_uv_of_the_makefile_from_the_lock_without_dev_dependencies(
    dockerfile: Path,
) -> None:
    text = dockerfile.read_text()
    (uv,) = re.findall(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert f"uv=={uv}" in text
    assert re.search(r"uv sync --frozen --package \S+ --no-dev", text)
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert "FROM python:3.11-slim-bookworm" in text


def test_the_build_context_leaves_out_tests_and_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in ("**/tests", ".venv", ".tools", ".git", ".devstack", "client/node_modules"):
        assert entry in ignored
