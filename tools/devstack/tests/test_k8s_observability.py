"""infra/k8s/observability, checked offline: it builds with `kubectl kustomize`, the collector
takes OTLP in and exports what its pipeline names, the scrape component annotates the
services' pods (and not the worker's), and every query of the Grafana dashboard names a metric
that a service really exports (compared with a scrape of the expiration app's /metrics, which
has the common metrics and its own)."""

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml

from ticketing_common.bus.memory import InMemoryBus
from ticketing_expiration.main import create_app
from ticketing_expiration.settings import Settings
from ticketing_testing.apps import TEST_JWT_KEY, running
from ticketing_testing.scrapes import names

OBSERVABILITY = Path(__file__).parents[3] / "infra" / "k8s" / "observability"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
METRIC = re.compile(r"\bticketing_[a-z_]+\b")


def kustomize(folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def only(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    return found


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return kustomize(OBSERVABILITY)


def dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = only(docs, "ConfigMap", "ticketing-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    loaded: dict[str, Any] = json.loads(config_map["data"]["ticketing.json"])
    return loaded


def test_the_collector_takes_otlp_and_exports_what_its_pipeline_names(
    docs: list[dict[str, Any]],
) -> None:
    deployment = only(docs, "Deployment", "otel-collector")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    mounted = deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    config = yaml.safe_load(only(docs, "ConfigMap", mounted)["data"]["config.yaml"])
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert traces["exporters"]
    assert set(traces["exporters"]) <= set(config["exporters"])
    assert set(traces["processors"]) <= set(config["processors"])
    ports = {p["containerPort"] for p in container["ports"]}
    service = only(docs, "Service", "otel-collector")
    assert {p["port"] for p in service["spec"]["ports"]} == {4317, 4318} <= ports
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]


def test_the_scrape_component_annotates_the_services_and_points_them_at_the_collector(
    tmp_path: Path,
) -> None:
    def deployment(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": "x", "env": []}]},
                },
            },
        }

    names_ = ["orders-depl", "expiration-depl", "expiration-worker-depl", "mongo-depl"]
    (tmp_path / "deployments.yaml").write_text(yaml.safe_dump_all([deployment(n) for n in names_]))
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["deployments.yaml"],
                "components": [os.path.relpath(OBSERVABILITY / "scrape", tmp_path)],
            }
        )
    )
    built = {d["metadata"]["name"]: d["spec"]["template"] for d in kustomize(tmp_path)}

    def annotations(name: str) -> dict[str, str]:
        found: dict[str, str] = built[name]["metadata"].get("annotations", {})
        return found

    def env(name: str) -> list[dict[str, str]]:
        found: list[dict[str, str]] = built[name]["spec"]["containers"][0]["env"]
        return found

    scraped = {"prometheus.io/scrape": "true", "prometheus.io/port": "8000"}
    assert scraped.items() <= annotations("orders-depl").items()
    assert annotations("orders-depl")["prometheus.io/path"] == "/metrics"
    assert scraped.items() <= annotations("expiration-depl").items()
    assert annotations("expiration-worker-depl") == {}  # no HTTP server: expiration exports
    assert annotations("mongo-depl") == {}
    otlp = {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4318"}
    assert env("orders-depl") == env("expiration-worker-depl") == [otlp]
    assert env("mongo-depl") == []


async def test_every_dashboard_query_names_a_metric_the_services_export(
    docs: list[dict[str, Any]],
) -> None:
    board = dashboard(docs)
    queries = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    assert len(queries) >= 12
    used = {name for query in queries for name in METRIC.findall(query)}
    assert used - await _exported() == set()
    # What the dashboard promises: requests, errors, latency per service; lag, dead letters.
    assert {
        "ticketing_http_requests_total",
        "ticketing_http_request_duration_seconds_bucket",
        "ticketing_consumer_pending_messages",
        "ticketing_events_dead_lettered_total",
    } <= used
    titles = " ".join(panel["title"] for panel in board["panels"]).lower()
    for word in ("request rate", "errors", "latency", "lag", "dead letters"):
        assert word in titles


def _declared(text: str) -> set[str]:
    """The sample names a scrape declares (`# TYPE name kind`) even before a sample exists: a
    counter `<name>_total`, a histogram its `_bucket`, `_sum` and `_count`, a gauge `<name>`."""
    out: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split()
        if kind == "counter":
            out.add(name if name.endswith("_total") else f"{name}_total")
        elif kind == "histogram":
            out |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            out.add(name)
    return out


async def _exported() -> set[str]:
    """Every sample name the services export (the expiration app has the common metrics)."""
    settings = Settings(environment="test", jwt_key=TEST_JWT_KEY)
    redis = fakeredis.FakeRedis()
    app = create_app(settings, bus=InMemoryBus("expiration"), redis=redis)
    async with running(app) as client:
        res = await client.get("/metrics")
    redis.close()
    assert res.status_code == 200
    return names(res.text) | _declared(res.text)


async def test_the_alert_rules_name_exported_metrics_and_fire_on_a_refused_publish(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Issue 21: a JetStream stream full (publishes refused) pages someone. The rules build with
    the kustomization, name only metrics the services export, and (with promtool, Debian's
    `prometheus` package) pass `promtool check rules` and the unit test alert-tests.yaml."""
    rules_text = only(docs, "ConfigMap", "ticketing-prometheus-rules")["data"][
        "ticketing-alerts.yaml"
    ]
    rules = yaml.safe_load(rules_text)
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    assert "ticketing_bus_publish_refused_total" in alerts["TicketingBusPublishRefused"]["expr"]
    used = {name for rule in alerts.values() for name in METRIC.findall(rule["expr"])}
    assert used - await _exported() == set()
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    (tmp_path / "ticketing-alerts.yaml").write_text(rules_text)
    shutil.copy(OBSERVABILITY / "alert-tests.yaml", tmp_path)
    for command in (
        ["check", "rules", "ticketing-alerts.yaml"],
        ["test", "rules", "alert-tests.yaml"],
    ):
        done = await asyncio.to_thread(
            subprocess.run,
            [promtool, *command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
