"""The Gateway API route of production: an `HTTPRoute` that routes exactly as the gateway's table.

The Ingress (ingress-nginx) stays for the dev loop; production controllers read the HTTPRoute of
the production overlay instead. Both must agree with the one routing table
(ticketing_devstack.routes.ROUTES): every prefix to the same Service on port 8000, as PathPrefix
matches (Gateway API picks the longest matching prefix, as the table does). The Gateway the route
attaches to belongs to the platform: the route only names it (parentRefs).
"""

from __future__ import annotations

from collections.abc import Iterable

from ticketing_deploy.manifests import ROOT, Doc, named, of_kind
from ticketing_deploy.rules import allowed_sources

API_VERSION = "gateway.networking.k8s.io/v1"
HOST = "ticketing.dev"
PORT = 8000
SCHEMAS = ROOT.parent / "shared" / "schemas" / "gateway-api-v1.6.1"
HTTPROUTE_SCHEMA = SCHEMAS / "httproute-v1.json"
READ_TIMEOUT = "nginx.ingress.kubernetes.io/proxy-read-timeout"
Route = tuple[str, str]  # (path prefix, service), as in the routing table


def _ingress_timeout(docs: list[Doc]) -> str | None:
    """The Ingress's read timeout as a Gateway API duration ("150s"), if there is an Ingress."""
    for ingress in of_kind(docs, "Ingress"):
        seconds = ingress["metadata"].get("annotations", {}).get(READ_TIMEOUT)
        if seconds is not None:
            return f"{seconds}s"
    return None


def _service_problem(docs: list[Doc], name: str, namespace: str | None) -> str | None:
    """A backendRef's Service: in the route's own namespace, selecting the service's pods."""
    services = [
        s
        for s in of_kind(docs, "Service")
        if s["metadata"]["name"] == name and s["metadata"].get("namespace") == namespace
    ]
    if not services:
        return f"no Service {name} in namespace {namespace}"
    if services[0]["spec"].get("selector", {}).get("app") != name.removesuffix("-srv"):
        return f"{name} does not select the {name.removesuffix('-srv')} pods"
    return None


def _rule_routes(
    docs: list[Doc], rule: Doc, namespace: str | None, timeout: str | None
) -> tuple[list[str], set[Route]]:
    """One rule of the HTTPRoute: its (prefix, service) pairs, and what is wrong with it."""
    found: list[str] = []
    refs = rule.get("backendRefs", [])
    # No matches means PathPrefix "/" (the API's default).
    matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
    where = ", ".join(str(m.get("path", {}).get("value", "/")) for m in matches)
    if len(refs) != 1:
        return [f"rule {where}: expected one backendRef, found {len(refs)}"], set()
    (ref,) = refs
    if ref.get("group", "") != "" or ref.get("kind", "Service") != "Service":
        found.append(f"rule {where}: the backend is not a Service")
    if ref.get("namespace") is not None:
        found.append(f"rule {where}: the backend is in another namespace ({ref['namespace']})")
    if ref.get("port") != PORT:
        found.append(f"rule {where}: backend port is not {PORT}")
    if problem := _service_problem(docs, ref.get("name", ""), namespace):
        found.append(f"rule {where}: {problem}")
    if timeout is not None and rule.get("timeouts", {}).get("request") != timeout:
        found.append(f"rule {where}: request timeout is not the Ingress's {timeout}")
    table: set[Route] = set()
    for match in matches:
        path = match.get("path", {"type": "PathPrefix", "value": "/"})
        if path.get("type", "PathPrefix") != "PathPrefix":
            found.append(f"rule {where}: path type is {path.get('type')}, not PathPrefix")
        if set(match) - {"path"}:
            found.append(f"rule {where}: matches on {sorted(set(match) - {'path'})} too")
        table.add((path.get("value", "/"), ref.get("name", "").removesuffix("-srv")))
    return found, table


def httproute_problems(docs: list[Doc], routes: Iterable[Route]) -> list[str]:
    """The one HTTPRoute routes exactly as the gateway's table, for ticketing.dev, to Services
    that select the right pods, attached to a Gateway named with its namespace."""
    httproutes = of_kind(docs, "HTTPRoute")
    if len(httproutes) != 1:
        return [f"expected one HTTPRoute, found {len(httproutes)}"]
    (httproute,) = httproutes
    found: list[str] = []
    if httproute["apiVersion"] != API_VERSION:
        found.append(f"apiVersion is {httproute['apiVersion']}, not {API_VERSION}")
    spec = httproute.get("spec", {})
    if spec.get("hostnames") != [HOST]:
        found.append(f"hostnames must be [{HOST}], are {spec.get('hostnames')}")
    parents = spec.get("parentRefs", [])
    if not parents:
        found.append("no parentRefs: the route attaches to no Gateway")
    for parent in parents:
        if parent.get("kind", "Gateway") != "Gateway" or not parent.get("name"):
            found.append(f"parentRef {parent} names no Gateway")
        elif not parent.get("namespace"):
            found.append(f"parentRef {parent['name']}: no namespace (the platform's Gateway)")
    timeout = _ingress_timeout(docs)
    namespace = httproute["metadata"].get("namespace")
    table: set[Route] = set()
    for rule in spec.get("rules", []):
        problems, pairs = _rule_routes(docs, rule, namespace, timeout)
        found += problems
        found += [f"route {p} appears twice" for p in sorted(pairs & table)]
        table |= pairs
    wanted = set(routes)
    found += [f"route {r} is not in the HTTPRoute" for r in sorted(wanted - table)]
    found += [f"the HTTPRoute routes {r}, the gateway does not" for r in sorted(table - wanted)]
    return found


def gateway_reach_problems(docs: list[Doc]) -> list[str]:
    """The Gateway's namespace may connect to every Service the HTTPRoute sends to: the default-
    deny NetworkPolicies admit the ingress-nginx controller's pods only, so without a policy of
    its own a Gateway in another namespace would reach nothing."""
    sources = allowed_sources(docs)
    found: list[str] = []
    for route in of_kind(docs, "HTTPRoute"):
        namespaces = {ref.get("namespace", "") for ref in route["spec"].get("parentRefs", [])}
        for rule in route["spec"].get("rules", []):
            for backend in rule.get("backendRefs", []):
                service = named(docs, "Service", backend["name"])
                app = service["spec"].get("selector", {}).get("app", "")
                allowed = sources.get(app, set())
                for namespace in sorted(namespaces):
                    if "*" not in allowed and f"ns:{namespace}" not in allowed:
                        found.append(f"{app}: the Gateway's namespace {namespace} may not connect")
    return found
