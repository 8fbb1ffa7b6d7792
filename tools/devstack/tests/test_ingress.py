"""The Kubernetes Ingress and the local gateway route from the same table."""

from pathlib import Path

import yaml

from ticketing_devstack.routes import ROUTES

INGRESS = Path(__file__).parents[3] / "infra" / "k8s" / "ingress-srv.yaml"


def test_the_ingress_routes_exactly_as_the_gateway() -> None:
    doc = yaml.safe_load(INGRESS.read_text())
    assert doc["kind"] == "Ingress"
    (rule,) = doc["spec"]["rules"]
    assert rule["host"] == "ticketing.dev"
    paths = rule["http"]["paths"]
    assert all(p["pathType"] == "Prefix" for p in paths)
    ingress = {(p["path"], p["backend"]["service"]["name"].removesuffix("-srv")) for p in paths}
    assert ingress == set(ROUTES)
