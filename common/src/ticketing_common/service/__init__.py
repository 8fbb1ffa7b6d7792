"""The service factory: every Ticketing service is a `ServiceSpec` made into a FastAPI app.

A service declares its routers, its runtime (`Runtime` / `MongoRuntime`, opened by its
`OpenRuntime`), its event handlers (`Handlers(handles(Payload, on_payload, needs=...), ...)`),
its indexes, outboxes, readiness checks and direct endpoints; `ServiceSpec.create_app` does the
rest, the same way for every service. Routes reach the runtime through `runtime_of`.

Inside: `_spec` (the spec and the factory with its lifespan), `_runtime`, `_handlers`, `_app`
(the app and its middleware), `_connections` (Mongo and the bus), `_health`, `_direct` (the
direct routes, a fast path), `_errors` (how failures are answered), `_openapi`, `_heap`.
"""

from ticketing_common.service._direct import DirectEndpoint
from ticketing_common.service._handlers import EventHandler, Handlers, Subscription, handles
from ticketing_common.service._health import ReadinessCheck
from ticketing_common.service._openapi import openapi_document
from ticketing_common.service._runtime import MongoRuntime, OpenRuntime, Runtime, runtime_of
from ticketing_common.service._spec import ServiceSpec, create_service_app

__all__ = [
    "DirectEndpoint",
    "EventHandler",
    "Handlers",
    "MongoRuntime",
    "OpenRuntime",
    "ReadinessCheck",
    "Runtime",
    "ServiceSpec",
    "Subscription",
    "create_service_app",
    "handles",
    "openapi_document",
    "runtime_of",
]
