"""Traces: one trace from a request through its outbox, the bus and each handler, whenever the
relay or the sweep publishes; trace ids in the logs; tracing off and sampled out."""

import contextlib
import http.server
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from ticketing_common.bus.memory import InMemoryBus
from ticketing_common.events import Event, TicketCreated, TicketUpdated, new_event
from ticketing_common.logs import configure_logging
from ticketing_common.outbox import OUTBOX
from ticketing_common.service import Handlers, Runtime, ServiceSpec, create_service_app, handles
from ticketing_common.settings import ServiceSettings
from ticketing_common.telemetry import tracing
from ticketing_testing.apps import TEST_JWT_KEY, running, selling_router
from ticketing_testing.waiting import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
THINGS = "things"


async def on_created(runtime: Runtime[Any], event: Event[TicketCreated]) -> None:
    """Reserves the thing for an order: a second event, written by the handler."""
    data = event.data
    reserved = TicketUpdated(**{**data.model_dump(), "version": 1, "order_id": "order-1"})
    await runtime.outbox[THINGS].find_one_and_update(
        {"_id": data.id}, {"$set": {"version": 1}}, new_event(reserved)
    )


async def on_updated(runtime: Runtime[Any], event: Event[TicketUpdated]) -> None:
    logging.getLogger("ticketing.test").info("reserved", extra={"thing": event.data.id})


def spec(name: str) -> ServiceSpec[ServiceSettings, Runtime[ServiceSettings]]:
    return ServiceSpec(
        name=name,
        routers=[selling_router(THINGS)],
        handlers=Handlers(handles(TicketCreated, on_created), handles(TicketUpdated, on_updated)),
        outbox_collections=[THINGS],
    )


def settings_for(name: str, **fields: Any) -> ServiceSettings:
    return ServiceSettings(
        service_name=name,
        environment="test",
        jwt_key=TEST_JWT_KEY,
        outbox_sweep_seconds=0.05,
        **fields,
    )


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def name() -> str:
    return f"svc{uuid.uuid4().hex[:8]}"


async def test_a_request_its_events_and_their_handlers_are_one_trace_even_via_the_sweep(
    mongo: Any, tmp_path: Path, name: str
) -> None:
    """The bus is down when the request writes: the outbox entry keeps the request's context,
    and the sweep that publishes it later (no span of its own current) continues that trace."""
    bus = InMemoryBus(name)
    app = create_service_app(
        spec(name), settings_for(name, traces_dir=str(tmp_path)), mongo=mongo, bus=bus
    )
    async with running(app) as client:
        bus.broker.available = False
        res = await client.post("/api/things", headers={"traceparent": INCOMING})
        assert res.status_code == 201
        thing_id = res.json()["id"]
        doc = await mongo[name][THINGS].find_one({"_id": thing_id})
        (entry,) = doc[OUTBOX]
        stored = entry[tracing.TRACE_FIELD]["traceparent"]
        assert stored.startswith(f"00-{TRACE_ID}-")
        assert stored != INCOMING

        bus.broker.available = True

        def reserved() -> bool:
            return any(s == "ticket.updated" for s, _ in bus.broker.messages)

        await eventually(reserved)
        await bus.drain()
        # Each message on the bus carries the trace in its headers.
        assert [h["traceparent"][3:35] for h in bus.broker.headers] == [TRACE_ID, TRACE_ID]
    spans = read_spans(tmp_path / f"{name}.jsonl")
    by_id = {s["spanId"]: s for s in spans}
    assert {s["traceId"] for s in spans} == {TRACE_ID}

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parentSpanId"]]

    (request,) = [s for s in spans if s["kind"] == "SERVER"]
    assert request["name"] == "POST /api/things"
    assert request["parentSpanId"] == "00f067aa0ba902b7"  # the caller's span
    assert request["attributes"]["ticket.id"] == thing_id
    assert request["attributes"]["http.response.status_code"] == 201
    assert stored == f"00-{TRACE_ID}-{request['spanId']}-01"
    (handled_created,) = [s for s in spans if s["name"] == "handle ticket.created"]
    (handled_updated,) = [s for s in spans if s["name"] == "handle ticket.updated"]
    assert handled_created["kind"] == handled_updated["kind"] == SpanKind.CONSUMER.name
    # request -> publish (by the sweep) -> handler -> publish (by the relay) -> handler
    published_created = parent(handled_created)
    assert published_created["name"] == "publish ticket.created"
    assert published_created["kind"] == "PRODUCER"
    assert parent(published_created) is request
    published_updated = parent(handled_updated)
    assert published_updated["name"] == "publish ticket.updated"
    assert parent(published_updated) is handled_created
    assert handled_updated["attributes"]["order.id"] == "order-1"
    assert handled_updated["attributes"]["messaging.outcome"] == "ack"
    assert handled_created["attributes"]["messaging.consumer.group.name"] == (
        f"{name}-ticket-created"
    )


async def test_an_event_without_a_trace_starts_one_in_its_handler(
    mongo: Any, tmp_path: Path, name: str
) -> None:
    bus = InMemoryBus(name)
    app = create_service_app(
        spec(name), settings_for(name, traces_dir=str(tmp_path)), mongo=mongo, bus=bus
    )
    event = new_event(TicketUpdated(id="t9", version=1, title="a", price=1.0, user_id="u"))
    async with running(app):
        await bus.publish(event)  # outside any span: no headers
        await bus.drain()
    assert bus.broker.headers == [{}]
    (span,) = read_spans(tmp_path / f"{name}.jsonl")
    assert span["name"] == "handle ticket.updated"
    assert span["parentSpanId"] is None


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


async def test_with_tracing_off_nothing_is_traced_or_passed_on(
    mongo: Any, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")  # read by the SDK as tracing is set up
    bus = InMemoryBus(name)
    app = create_service_app(spec(name), settings_for(name), mongo=mongo, bus=bus)
    async with running(app) as client:
        assert tracing.tracer(name) is None
        bus.broker.available = False
        res = await client.post("/api/things", headers={"traceparent": INCOMING})
        doc = await mongo[name][THINGS].find_one({"_id": res.json()["id"]})
        assert tracing.TRACE_FIELD not in doc[OUTBOX][0]
        bus.broker.available = True
        await eventually(lambda: len(bus.broker.messages) == 2)
        await bus.drain()
    assert bus.broker.headers == [{}, {}]


@contextlib.contextmanager
def recorded(name: str, kept: float) -> Iterator[InMemorySpanExporter]:
    """`name`'s tracing with the share `kept` of new traces kept, its spans recorded."""
    exporter = InMemorySpanExporter()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_TRACES_SAMPLER_ARG", str(kept))
        traces = tracing.configure(
            name, settings_for(name), processors=[SimpleSpanProcessor(exporter)]
        )
    try:
        yield exporter
    finally:
        traces.shutdown()


def test_the_sampler_ratio_drops_new_traces_but_follows_a_parent(name: str) -> None:
    with recorded(name, 0.0) as exporter:
        with tracing.span(name, "new", root=True):
            flags = tracing.headers()["traceparent"].rsplit("-", 1)[1]
            assert int(flags, 16) & 1 == 0  # passed on, marked not sampled
        with tracing.span(name, "continued", parent={"traceparent": INCOMING}):
            pass
    assert [s.name for s in exporter.get_finished_spans()] == ["continued"]


NOT_SAMPLED_PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-00"


def test_a_span_not_sampled_is_still_in_its_trace_and_passes_the_choice_on(name: str) -> None:
    """Spans not sampled are made without the SDK: they must carry the same ids and flags."""
    with recorded(name, 0.0) as exporter:
        with tracing.span(name, "new", root=True) as new:
            assert new is not None
            assert not new.is_recording()
            made = new.get_span_context()
            assert made.is_valid
            assert not made.trace_flags.sampled
            with tracing.span(name, "child") as child:
                assert child is not None
                inner = child.get_span_context()
                assert (inner.trace_id, inner.trace_flags.sampled) == (made.trace_id, False)
                assert inner.span_id != made.span_id
                sent = tracing.headers()["traceparent"]
                assert sent == f"00-{made.trace_id:032x}-{inner.span_id:016x}-02"
        assert not trace.get_current_span().get_span_context().is_valid  # detached again
        with tracing.span(name, "handler", parent={"traceparent": NOT_SAMPLED_PARENT}) as got:
            assert got is not None
            assert not got.is_recording()
            assert format(got.get_span_context().trace_id, "032x") == TRACE_ID
            assert tracing.headers()["traceparent"].endswith("-00")
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("kept", [0.25, 0.5])
def test_the_share_of_new_traces_kept_is_the_ratio(name: str, kept: float) -> None:
    """Whether a new trace is kept is decided once (deciding twice would keep its square)."""
    made = 4000
    with recorded(name, kept) as exporter:
        for _ in range(made):
            with tracing.span(name, "new", root=True), tracing.span(name, "child"):
                pass
    finished = exporter.get_finished_spans()
    roots = [s for s in finished if s.name == "new"]
    # 4,000 draws: the share is within 0.05 of the ratio but once in millions of runs.
    assert abs(len(roots) / made - kept) < 0.05
    # A kept trace's child is kept with it.
    assert len(finished) == 2 * len(roots)


def test_every_log_line_in_a_span_carries_its_trace_and_span_ids(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    configure_logging(name)
    traces = tracing.configure(name, settings_for(name))
    log = logging.getLogger("ticketing.test")
    try:
        with tracing.span(name, "work", parent={"traceparent": INCOMING}) as span:
            assert span is not None
            log.info("inside")
        log.info("outside")
    finally:
        traces.shutdown()
    inside, outside = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert inside["trace_id"] == TRACE_ID
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside


def test_a_trace_context_is_only_taken_from_a_valid_traceparent() -> None:
    assert tracing.context_of(None) is None
    assert tracing.context_of({}) is None
    assert tracing.context_of({"traceparent": "garbage"}) is None
    assert tracing.context_of({"traceparent": 42}) is None
    assert tracing.context_of({"traceparent": INCOMING}) is not None


async def test_the_http_request_span_is_named_by_its_route(
    mongo: Any, tmp_path: Path, name: str
) -> None:
    app = create_service_app(
        spec(name), settings_for(name, traces_dir=str(tmp_path)), mongo=mongo, bus=InMemoryBus(name)
    )
    async with running(app) as client:
        assert (await client.get("/api/nothing/here")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    (span,) = read_spans(tmp_path / f"{name}.jsonl")  # health and metrics are not traced
    assert span["name"] == "GET unmatched"
    assert span["attributes"]["url.path"] == "/api/nothing/here"


async def test_a_global_tracer_provider_adds_no_second_set_of_request_spans(
    mongo: Any, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our request spans are the only ones: FastAPI's own telemetry (a span per request and
    per dependency, on as soon as any library sets a global tracer provider) stays off."""
    global_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(global_spans))
    # As OpenTelemetry's own test helpers reset it: the global provider may be set once.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    trace.set_tracer_provider(provider)
    app = create_service_app(spec(name), settings_for(name), mongo=mongo, bus=InMemoryBus(name))
    async with running(app) as client:
        assert (await client.post("/api/things")).status_code == 201
    assert global_spans.get_finished_spans() == ()


@contextlib.contextmanager
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An OTLP/HTTP collector on loopback: its address, and the (path, body) of each export."""
    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.mark.parametrize(
    ("variable", "path"),
    [("OTEL_EXPORTER_OTLP_ENDPOINT", "/v1/traces"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/in")],
)
def test_spans_are_exported_over_otlp_where_the_sdk_s_variables_say(
    name: str, monkeypatch: pytest.MonkeyPatch, variable: str, path: str
) -> None:
    """The SDK reads its own variables: the base address (to which it adds /v1/traces) or the
    traces' own URL, and the resource's attributes (the service's name stays its own)."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "not-the-service")
    with collector() as (address, received):
        base = address if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" else f"{address}/in"
        monkeypatch.setenv(variable, base)
        traces = tracing.configure(name, settings_for(name))
        with tracing.span(name, "exported work"):
            pass
        traces.shutdown()  # exports what the batch holds
    ((got, body),) = received
    assert got == path
    assert b"exported work" in body
    assert name.encode() in body  # the service.name resource attribute
    assert b"not-the-service" not in body
    assert b"staging" in body


def test_without_an_otlp_endpoint_nothing_is_exported_but_spans_are_made(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not even to the SDK's default address (localhost:4318), which nothing answers."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)

    def no_exporter() -> None:
        raise AssertionError("an OTLP exporter was made without an endpoint")

    monkeypatch.setattr(
        "opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter", no_exporter
    )
    traces = tracing.configure(name, settings_for(name))
    try:
        with tracing.span(name, "kept nowhere") as span:
            assert span is not None
            assert span.is_recording()
    finally:
        traces.shutdown()


@pytest.mark.parametrize("share", ["1.5", "-0.1", "nan", "some"])
def test_a_share_of_traces_that_is_not_from_0_to_1_stops_the_service(
    name: str, monkeypatch: pytest.MonkeyPatch, share: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", share)
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1"):
        tracing.configure(name, settings_for(name))
    assert tracing.tracer(name) is None
