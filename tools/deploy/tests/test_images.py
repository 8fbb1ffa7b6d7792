"""The Dockerfiles: hadolint finds nothing, and the six app images are the root Dockerfile,
built by skaffold and compose alike with build args that name a real member, package and app."""

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from ticketing_deploy import rules
from ticketing_deploy.images import (
    DOCKERFILE,
    Image,
    compose_images,
    dockerfiles,
    skaffold_images,
    workspace_members,
)
from ticketing_deploy.manifests import ROOT, tool

DOCKERFILES = dockerfiles()
SKAFFOLD_IMAGES = skaffold_images()
COMPOSE_IMAGES = compose_images()
MEMBERS = workspace_members()
APPS = ("auth", "tickets", "orders", "payments", "expiration", "client")


def compose_app_images() -> list[Image]:
    return [i for i in COMPOSE_IMAGES if i.dockerfile == DOCKERFILE]


def with_args(image: Image, **args: str) -> Image:
    return replace(image, args={**image.args, **args})


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


def test_every_app_image_is_the_root_dockerfile_built_for_a_real_member() -> None:
    """skaffold's artifacts and compose's app services: the one recipe, its args naming a
    workspace member, that member's package and an app factory in its sources."""
    assert {i.name for i in SKAFFOLD_IMAGES} == {f"ticketing/{n}" for n in APPS}
    assert rules.build_problems([*SKAFFOLD_IMAGES, *compose_app_images()], MEMBERS) == []


def test_skaffold_and_compose_build_the_same_app_images() -> None:
    assert rules.build_agreement_problems(SKAFFOLD_IMAGES, COMPOSE_IMAGES) == []


def test_the_final_stage_serves_the_app_of_the_build_arg() -> None:
    """The CMD's shell expands $APP at start: the final stage must set it from the arg."""
    final = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    assert re.search(r"^ARG APP$", final, re.M)
    assert re.search(r"^ENV .*\bAPP=\$APP\b", final, re.M)
    for image in SKAFFOLD_IMAGES:
        assert image.cmd[:3] == ["uvicorn", "--factory", image.args["APP"]], image.name


AUTH = SKAFFOLD_IMAGES[0]
# Each puts one wrong value into the auth artifact's build args; the rule must object.
WRONG_ARGS: dict[str, tuple[dict[str, str], str]] = {
    "a member not in the workspace": ({"MEMBER": "services/billing"}, "is not a workspace member"),
    "another member's package": ({"PACKAGE": "ticketing-tickets"}, "is not services/auth's"),
    "no such module": ({"APP": "ticketing_auth.app:create_app"}, "no module ticketing_auth.app"),
    "another member's app": ({"APP": "ticketing_tickets.main:create_app"}, "not in services/auth"),
    "no such factory": ({"APP": "ticketing_auth.main:make_app"}, "main has no make_app"),
}


@pytest.mark.parametrize("breakage", WRONG_ARGS)
def test_a_wrong_build_arg_fails_the_check(breakage: str) -> None:
    wrong, expected = WRONG_ARGS[breakage]
    (problem,) = rules.build_problems([with_args(AUTH, **wrong)], MEMBERS)
    assert expected in problem, problem


def test_an_arg_left_out_or_another_dockerfile_fails_the_check() -> None:
    no_app = replace(AUTH, args={k: v for k, v in AUTH.args.items() if k != "APP"})
    e2e_runner = replace(AUTH, dockerfile=ROOT / "tools" / "devstack" / "Dockerfile")
    assert rules.build_problems([no_app, e2e_runner], MEMBERS) == [
        "ticketing/auth: build args ['MEMBER', 'PACKAGE'], not ['MEMBER', 'PACKAGE', 'APP']",
        "ticketing/auth: built from tools/devstack/Dockerfile",
    ]


def test_skaffold_and_compose_building_different_images_fails_the_check() -> None:
    (auth,) = [i for i in COMPOSE_IMAGES if i.name == "auth"]
    assert rules.build_agreement_problems(
        SKAFFOLD_IMAGES, [*COMPOSE_IMAGES, with_args(auth, PACKAGE="ticketing-tickets")]
    ) == ["auth: built by compose, not by skaffold"]
    without_auth = [i for i in COMPOSE_IMAGES if i.name != "auth"]
    assert rules.build_agreement_problems(SKAFFOLD_IMAGES, without_auth) == [
        "ticketing/auth: built by skaffold, not by compose"
    ]


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
