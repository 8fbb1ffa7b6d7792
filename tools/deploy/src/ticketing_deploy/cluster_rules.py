"""Rules on how the objects resolve one another on a real cluster (what schema validation
accepts and kube-dns or the controllers would not): each returns the problems it finds."""

from __future__ import annotations

from ticketing_deploy.manifests import Doc, app_of, of_kind

HEADLESS = "None"  # the string: a YAML null (`clusterIP: null`) asks for a cluster IP


def headless_problems(docs: list[Doc]) -> list[str]:
    """Every StatefulSet's spec.serviceName names a Service of its pods whose spec.clusterIP is
    the string "None": only a headless Service gives each member its own DNS name
    (`auth-mongo-0.auth-mongo`, `nats-0.nats-headless`), which replica sets and routes dial."""
    found: list[str] = []
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for sts in of_kind(docs, "StatefulSet"):
        name = sts["metadata"]["name"]
        governing = sts["spec"].get("serviceName")
        service = services.get(governing) if governing else None
        if service is None:
            found.append(f"{name}: its serviceName {governing!r} names no Service")
            continue
        spec = service["spec"]
        if spec.get("clusterIP", "(unset)") != HEADLESS:
            found.append(
                f"{name}: its Service {governing} is not headless: clusterIP is "
                f"{spec.get('clusterIP', '(unset)')!r}, not the string 'None'"
            )
        if spec.get("selector", {}).get("app") != app_of(sts):
            found.append(f"{name}: its Service {governing} does not select its pods")
    return found
