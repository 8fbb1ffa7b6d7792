"""An image's install step outside Docker: the Dockerfile's `uv sync`, with the image's build args
put in, into a temporary environment, then every command its containers run (the CMD, the
manifests' commands and exec probes) imported there. What the final stage copies must be what
that install needs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ticketing_deploy.images import Image, modules_run, skaffold_images
from ticketing_deploy.manifests import OVERLAYS, ROOT, load, pod_spec, workloads


def uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    if local.exists():
        return str(local)
    raise FileNotFoundError("uv not found in .tools/: run `make bootstrap`")


def commands_of(image: Image) -> list[list[str]]:
    """Everything a container of this image is told to run, in any overlay."""
    commands = [image.cmd]
    for overlay in OVERLAYS:
        for workload in workloads(load(overlay)):
            for container in pod_spec(workload)["containers"]:
                if container["image"] != image.name:
                    continue
                if "command" in container:
                    commands.append(container["command"])
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if "exec" in container.get(probe, {}):
                        commands.append(container[probe]["exec"]["command"])
    return commands


def rehearse(name: str) -> None:
    (image,) = [i for i in skaffold_images() if i.name == name]
    modules = sorted({m for command in commands_of(image) for m in modules_run(command)})
    with tempfile.TemporaryDirectory(prefix="image-") as venv:
        env = {
            **os.environ,
            "UV_PROJECT_ENVIRONMENT": venv,
            "UV_PYTHON_DOWNLOADS": "never",
            "VIRTUAL_ENV": venv,
        }
        install = [uv(), "sync", *image.uv_sync, "--python", sys.executable, "--quiet"]
        done = subprocess.run(install, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        python = str(Path(venv) / "bin" / "python")
        check = (
            "import importlib, importlib.util as u, sys, ticketing_common\n"
            "for m in sys.argv[1:]: importlib.import_module(m)\n"
            # httpcore tries to import sniffio on every request: without it, a failed import
            # (a scan of sys.path) per request.
            "if u.find_spec('httpx') and not u.find_spec('sniffio'):\n"
            "    raise RuntimeError('httpx without sniffio')\n"
            "import pytest\n"
        )
        out = subprocess.run(
            [python, "-c", check, *modules], capture_output=True, text=True, cwd=venv, env=env
        )
        # Every entry point imports; and the dev tooling (pytest) is not in the image.
        assert "ModuleNotFoundError: No module named 'pytest'" in out.stderr, out.stderr
        sources = subprocess.run(
            [python, "-c", SOURCES], capture_output=True, text=True, cwd=venv, check=True
        ).stdout.split()
        assert set(sources) == image.copied_sources, (sources, image.copied_sources)


# The folders of the workspace members installed (editable) in the environment: exactly what
# the final stage must copy from the build stage.
SOURCES = f"""
import importlib.metadata as md, json, pathlib
root = pathlib.Path({str(ROOT)!r})
for dist in md.distributions():
    for f in dist.files or []:
        if f.name.endswith(".pth"):
            for line in pathlib.Path(f.locate()).read_text().splitlines():
                path = pathlib.Path(line.strip())
                if path.is_absolute() and root in path.parents:
                    print(path.relative_to(root))
"""
