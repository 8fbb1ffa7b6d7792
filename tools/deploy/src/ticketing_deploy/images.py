"""The images: what skaffold and compose build, and what the Dockerfile installs and runs."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ticketing_deploy.manifests import COMPOSE, ROOT, SKAFFOLD, load_yaml

# The one recipe of the six app images; its header says what each build arg means.
DOCKERFILE = ROOT / "Dockerfile"
BUILD_ARGS = ("MEMBER", "PACKAGE", "APP")

_UV_SYNC = re.compile(r"uv sync ([^\\&\n]+)")
_REFERENCE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")  # $NAME or ${NAME}; not ${NAME:?...}


@dataclass(frozen=True)
class Image:
    name: str  # as skaffold and the manifests name it (compose: the service's name)
    dockerfile: Path
    args: dict[str, str]  # the build args

    @property
    def text(self) -> str:
        """The Dockerfile's instructions as this build reads them: each build arg's `$NAME` and
        `${NAME}` put in; the CMD's `$APP` too, which the shell expands at start from the ENV
        set from that arg. Comments stay as written."""

        def put_in(reference: re.Match[str]) -> str:
            return self.args.get(reference[1] or reference[2], reference[0])

        lines = self.dockerfile.read_text().splitlines(keepends=True)
        return "".join(x if x.startswith("#") else _REFERENCE.sub(put_in, x) for x in lines)

    @property
    def uv_sync(self) -> list[str]:
        """The arguments of the build stage's `uv sync` (the install the rehearsal repeats)."""
        (args,) = _UV_SYNC.findall(self.text)
        return shlex.split(args)

    @property
    def cmd(self) -> list[str]:
        """What a container runs unless told otherwise; a shell that only `exec`s a command
        (there to expand an ENV) counts as that command."""
        (line,) = [x for x in self.text.splitlines() if x.startswith("CMD ")]
        cmd: list[str] = json.loads(line.removeprefix("CMD "))
        if cmd[:2] == ["sh", "-c"] and len(cmd) == 3:
            words = shlex.split(cmd[2])
            if words[:1] == ["exec"]:
                return words[1:]
        return cmd

    @property
    def copied_sources(self) -> set[str]:
        """The source folders the final stage copies from the build stage."""
        return set(re.findall(r"^COPY --from=build \S* ?/app/(\S+) \S+$", self.text, re.M))


def skaffold_images() -> list[Image]:
    config = load_yaml(SKAFFOLD)
    return [
        Image(
            a["image"],
            ROOT / a.get("context", ".") / a["docker"]["dockerfile"],
            dict(a["docker"].get("buildArgs", {})),
        )
        for a in config["build"]["artifacts"]
    ]


def compose_images() -> list[Image]:
    """The images docker-compose.test.yml builds, one a service (the worker's is expiration's);
    the services that pull an image (mongo, nats, redis) are not among them."""
    services = load_yaml(COMPOSE)["services"]
    return [
        Image(
            name,
            ROOT / service["build"].get("context", ".") / service["build"]["dockerfile"],
            dict(service["build"].get("args", {})),
        )
        for name, service in services.items()
        if "build" in service
    ]


def workspace_members() -> dict[str, str]:
    """The uv workspace's members, as the root pyproject's globs find them: folder -> package."""
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    members: dict[str, str] = {}
    for pattern in workspace["members"]:
        for pyproject in sorted(ROOT.glob(f"{pattern}/pyproject.toml")):
            folder = str(pyproject.parent.relative_to(ROOT))
            members[folder] = tomllib.loads(pyproject.read_text())["project"]["name"]
    return members


def dockerfiles() -> list[Path]:
    """Every Dockerfile of the repository (the e2e runner's too)."""
    skip = {".venv", ".tools", "node_modules", ".git"}
    return sorted(p for p in ROOT.rglob("Dockerfile") if not skip & set(p.relative_to(ROOT).parts))


def modules_run(command: list[str]) -> list[str]:
    """The Python modules a container command runs: `uvicorn --factory pkg.mod:app` or
    `python -m pkg.mod`."""
    if command[:1] == ["uvicorn"]:
        target = next(a for a in command[1:] if ":" in a and not a.startswith("-"))
        return ["uvicorn", target.split(":")[0]]
    if command[:2] == ["python", "-m"]:
        return [command[2]]
    raise ValueError(f"not a command this check knows: {command}")
