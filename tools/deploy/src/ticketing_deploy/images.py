"""The images: skaffold's artifacts and what each Dockerfile installs and runs."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ticketing_deploy.manifests import ROOT, SKAFFOLD, load_yaml

_UV_SYNC = re.compile(r"uv sync ([^\\&\n]+)")


@dataclass(frozen=True)
class Image:
    name: str  # as skaffold and the manifests name it
    dockerfile: Path

    @property
    def text(self) -> str:
        return self.dockerfile.read_text()

    @property
    def uv_sync(self) -> list[str]:
        """The arguments of the build stage's `uv sync` (the install the rehearsal repeats)."""
        (args,) = _UV_SYNC.findall(self.text)
        return shlex.split(args)

    @property
    def package(self) -> str:
        args = self.uv_sync
        return args[args.index("--package") + 1]

    @property
    def cmd(self) -> list[str]:
        (line,) = [x for x in self.text.splitlines() if x.startswith("CMD ")]
        cmd: list[str] = json.loads(line.removeprefix("CMD "))
        return cmd

    @property
    def copied_sources(self) -> set[str]:
        """The source folders the final stage copies from the build stage."""
        return set(re.findall(r"^COPY --from=build \S* ?/app/(\S+) \S+$", self.text, re.M))


def skaffold_images() -> list[Image]:
    config = load_yaml(SKAFFOLD)
    return [
        Image(a["image"], ROOT / a.get("context", ".") / a["docker"]["dockerfile"])
        for a in config["build"]["artifacts"]
    ]


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
