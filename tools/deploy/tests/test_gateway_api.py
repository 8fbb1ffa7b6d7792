"""Production's Gateway API HTTPRoute: valid against the Gateway API v1.6.1 schema, and routing
exactly as the gateway's table (as the Ingress does); breaking a route breaks the check."""

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ticketing_deploy import gateway_api, manifests
from ticketing_deploy.gateway_api import HTTPROUTE_SCHEMA, httproute_problems
from ticketing_deploy.manifests import Doc, load, named, of_kind
from ticketing_devstack.routes import ROUTES

ROUTE_NAME = "ticketing"


def production() -> list[Doc]:
    return load("production")


def rules_of(docs: list[Doc]) -> list[Doc]:
    found: list[Doc] = named(docs, "HTTPRoute", ROUTE_NAME)["spec"]["rules"]
    return found


def rule_for(docs: list[Doc], prefix: str) -> Doc:
    (found,) = [r for r in rules_of(docs) if r["matches"][0]["path"]["value"] == prefix]
    return found


def check_jsonschema(document: Path) -> subprocess.CompletedProcess[str]:
    return manifests.check_jsonschema(HTTPROUTE_SCHEMA, document)


def test_the_production_httproute_routes_as_the_table() -> None:
    assert httproute_problems(production(), ROUTES) == []


def test_the_dev_loop_keeps_the_ingress_alone() -> None:
    docs = load("dev")
    assert of_kind(docs, "HTTPRoute") == []
    assert len(of_kind(docs, "Ingress")) == 1


def test_no_httproute_is_a_problem() -> None:
    docs = [d for d in production() if d["kind"] != "HTTPRoute"]
    assert httproute_problems(docs, ROUTES) == ["expected one HTTPRoute, found 0"]


def drop_orders(docs: list[Doc]) -> None:
    rules_of(docs).remove(rule_for(docs, "/api/orders"))


def orders_to_tickets(docs: list[Doc]) -> None:
    rule_for(docs, "/api/orders")["backendRefs"][0]["name"] = "tickets-srv"


def orders_on_another_port(docs: list[Doc]) -> None:
    rule_for(docs, "/api/orders")["backendRefs"][0]["port"] = 3000


def orders_exact(docs: list[Doc]) -> None:
    rule_for(docs, "/api/orders")["matches"][0]["path"]["type"] = "Exact"


def orders_elsewhere(docs: list[Doc]) -> None:
    rule_for(docs, "/api/orders")["matches"][0]["path"]["value"] = "/api/order"


def no_service(docs: list[Doc]) -> None:
    docs.remove(named(docs, "Service", "orders-srv"))


def route_elsewhere(docs: list[Doc]) -> None:
    named(docs, "HTTPRoute", ROUTE_NAME)["metadata"]["namespace"] = "default"


def other_host(docs: list[Doc]) -> None:
    named(docs, "HTTPRoute", ROUTE_NAME)["spec"]["hostnames"] = ["example.com"]


def no_gateway_namespace(docs: list[Doc]) -> None:
    del named(docs, "HTTPRoute", ROUTE_NAME)["spec"]["parentRefs"][0]["namespace"]


def short_timeout(docs: list[Doc]) -> None:
    rule_for(docs, "/api/payments")["timeouts"]["request"] = "15s"


@pytest.mark.parametrize(
    ("breaks", "problem"),
    [
        (drop_orders, "route ('/api/orders', 'orders') is not in the HTTPRoute"),
        (orders_to_tickets, "route ('/api/orders', 'orders') is not in the HTTPRoute"),
        (orders_on_another_port, "rule /api/orders: backend port is not 8000"),
        (orders_exact, "rule /api/orders: path type is Exact, not PathPrefix"),
        (orders_elsewhere, "the HTTPRoute routes ('/api/order', 'orders'), the gateway does not"),
        (no_service, "rule /api/orders: no Service orders-srv in namespace ticketing"),
        (route_elsewhere, "rule /api/orders: no Service orders-srv in namespace default"),
        (other_host, "hostnames must be [ticketing.dev], are ['example.com']"),
        (no_gateway_namespace, "no namespace (the platform's Gateway)"),
        (short_timeout, "rule /api/payments: request timeout is not the Ingress's 150s"),
    ],
)
def test_a_broken_route_is_a_problem(breaks: Callable[[list[Doc]], None], problem: str) -> None:
    docs = production()
    breaks(docs)
    found = httproute_problems(docs, ROUTES)
    assert any(problem in f for f in found), found


def test_a_route_the_table_lacks_is_a_problem() -> None:
    assert httproute_problems(production(), ROUTES[1:]) == [
        "the HTTPRoute routes ('/api/users', 'auth'), the gateway does not"
    ]


@pytest.mark.skipif(
    not HTTPROUTE_SCHEMA.exists(),
    reason=f"no {HTTPROUTE_SCHEMA} (a checkout outside the workplace)",
)
def test_the_httproute_matches_the_gateway_api_schema(tmp_path: Path) -> None:
    httproute = named(production(), "HTTPRoute", ROUTE_NAME)
    assert httproute["apiVersion"] == gateway_api.API_VERSION
    path = tmp_path / "httproute.json"
    path.write_text(json.dumps(httproute))
    out = check_jsonschema(path)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = copy.deepcopy(httproute)
    broken["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"  # the Ingress's word
    path.write_text(json.dumps(broken))
    assert check_jsonschema(path).returncode != 0


def test_the_gateway_may_reach_every_backend() -> None:
    assert gateway_api.gateway_reach_problems(production()) == []


def test_a_gateway_the_network_policies_do_not_admit_is_caught() -> None:
    docs = [d for d in production() if d["metadata"]["name"] != "http-from-gateway"]
    found = gateway_api.gateway_reach_problems(docs)
    assert found == [
        f"{app}: the Gateway's namespace gateway-system may not connect"
        for app in ("auth", "tickets", "orders", "payments", "client")
    ]
