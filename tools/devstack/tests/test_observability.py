"""Observability end to end: a purchase on the whole stack is one trace across orders, tickets,
expiration (its handler and the RQ job) and payments, and back to orders; every service's
/metrics moves with it; the timeline command tells the order's story."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ticketing_devstack import timeline
from ticketing_devstack.e2e import (
    assert_consistent,
    buy_until_answered,
    eventually,
    local_stack,
    users_of,
)
from ticketing_devstack.stack import SERVICES, Stack
from ticketing_testing.scrapes import value

pytestmark = pytest.mark.connected

ENV = {
    # The buyer pays at once; the expiry job still fires (and finds the order complete) soon.
    "ORDER_EXPIRATION_SECONDS": "6",
    "EXPIRY_GRACE_SECONDS": "1",
    "JWT_KEY": "e2e-jwt-key-0123456789abcdef0123456789",
    "OUTBOX_SWEEP_SECONDS": "0.5",
    "LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("observed")


@pytest.fixture(scope="module")
def stack(base: Path) -> Iterator[Stack]:
    with local_stack(base, ENV) as stack:
        yield stack


def traces_dir(stack: Stack) -> Path:
    return stack.data_dir / "traces"


async def scrape_all(stack: Stack) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=10) as http:
        out: dict[str, str] = {}
        for service in SERVICES:
            res = await http.get(f"{stack.urls[service]}/metrics")
            assert res.status_code == 200, (service, res.text)
            out[service] = res.text
        return out


def moved(
    before: dict[str, str], after: dict[str, str], service: str, name: str, **labels: str
) -> float:
    return value(after[service], name, **labels) - value(before[service], name, **labels)


async def test_a_purchase_is_one_trace_with_metrics_and_a_timeline(
    stack: Stack, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = await scrape_all(stack)
    async with users_of(stack) as make_user:
        seller, buyer = await make_user(), await make_user()
        ticket = await seller.sell("Traced", 12.5)
        res = await buy_until_answered(buyer, ticket["id"])
        assert res.status_code == 201, res.text
        order_id = res.json()["id"]

        async def paid() -> httpx.Response | None:
            res = await buyer.pay(order_id)
            return None if res.status_code == 404 else res

        assert (await eventually(paid)).status_code == 201

        async def complete() -> bool:
            return (await buyer.get(f"/api/orders/{order_id}"))["status"] == "complete"

        await eventually(complete)

    # --- one trace, from POST /api/orders through every service and back -----------------------
    def the_story() -> list[timeline.SpanRecord] | None:
        spans = timeline.story(timeline.load_spans(traces_dir(stack)), order_id)
        names = {(s["service"], s["name"]) for s in spans}
        wanted = {
            ("orders", "POST /api/orders"),
            ("tickets", "handle order.created"),
            ("expiration", "handle order.created"),
            ("expiration", "expire order"),  # the RQ job, in the worker
            ("payments", "handle order.created"),
            ("payments", "pay order"),
            ("orders", "handle payment.created"),  # orders again: the completion
            ("payments", "handle order.completed"),  # and the capture
            ("payments", "handle expiration.complete"),  # the window: already paid
        }
        return spans if wanted <= names else None

    spans = await eventually(the_story, timeout=40)
    (request,) = [s for s in spans if s["name"] == "POST /api/orders"]
    trace = [s for s in spans if s["traceId"] == request["traceId"]]
    assert {s["service"] for s in trace} >= {"orders", "tickets", "expiration", "payments"}
    assert request["parentSpanId"] is None
    assert request["attributes"]["order.id"] == order_id
    by_id = {s["spanId"]: s for s in trace}
    # Parent links intact: every other span of the trace hangs from one of it.
    assert [s["name"] for s in trace if s["parentSpanId"] not in by_id] == ["POST /api/orders"]

    def chain(span: timeline.SpanRecord) -> list[str]:
        names = []
        while span["parentSpanId"] is not None:
            span = by_id[span["parentSpanId"]]
            names.append(f"{span['service']}: {span['name']}")
        return names

    (completion,) = [s for s in trace if s["name"] == "handle payment.created"]
    assert chain(completion) == [
        "payments: publish payment.created",
        "payments: pay order",
        "payments: handle order.created",
        "orders: publish order.created",
        "orders: POST /api/orders",
    ]
    (expired,) = [s for s in trace if s["name"] == "handle expiration.complete"]
    assert expired["service"] == "payments"
    assert chain(expired)[:3] == [
        "expiration: expire order",
        "expiration: handle order.created",
        "orders: publish order.created",
    ]
    stripe_calls = [s for s in trace if s["name"].startswith("stripe ")]
    assert {s["name"] for s in stripe_calls} >= {
        "stripe POST /v1/payment_intents",
        "stripe POST /v1/payment_intents/{id}/confirm",
        "stripe POST /v1/payment_intents/{id}/capture",
    }
    # The payment's own request is a trace of its own, linked from the order's.
    (pay,) = [s for s in trace if s["name"] == "pay order"]
    (link,) = pay["links"]
    (pay_request,) = [s for s in spans if s["spanId"] == link["spanId"]]
    assert pay_request["name"] == "POST /api/payments"
    # Log lines carry the trace: expiration's handler and the worker's job logged in it.
    (scheduling,) = [
        s
        for s in trace
        if s["service"] == "expiration"
        and s["kind"] == "CONSUMER"
        and s["name"] == "handle order.created"
    ]
    (job,) = [s for s in trace if s["name"] == "expire order"]
    logged = {
        (entry.get("message"), entry.get("trace_id"), entry.get("span_id"))
        for name in ("expiration", "worker")
        for line in (base / "logs" / f"{name}.log").read_text().splitlines()
        if line.startswith("{")
        for entry in [json.loads(line)]
    }
    assert ("expiry scheduled", request["traceId"], scheduling["spanId"]) in logged
    assert ("expiration published", request["traceId"], job["spanId"]) in logged

    # --- /metrics moved on every service ------------------------------------------------------
    after = await scrape_all(stack)
    requests = "ticketing_http_requests_total"
    assert moved(before, after, "auth", requests, route="/api/users/signup", status="201") == 2
    assert moved(before, after, "tickets", requests, method="POST", status="201") == 1
    assert moved(before, after, "orders", requests, route="/api/orders", status="201") == 1
    assert moved(before, after, "payments", requests, route="/api/payments", status="201") == 1
    consumed = "ticketing_events_consumed_total"
    assert moved(before, after, "tickets", consumed, subject="order.created", outcome="ack") == 1
    assert moved(before, after, "orders", consumed, subject="payment.created", outcome="ack") == 1
    assert moved(before, after, "payments", consumed, subject="order.completed", outcome="ack") == 1
    assert moved(before, after, "expiration", consumed, subject="order.created", outcome="ack") == 1
    published = "ticketing_events_published_total"
    assert moved(before, after, "orders", published, subject="order.created") == 1
    assert moved(before, after, "orders", published, subject="order.completed") == 1
    assert moved(before, after, "payments", published, subject="payment.created") == 1
    assert moved(before, after, "tickets", published, subject="ticket.updated") >= 1
    assert moved(before, after, "expiration", "ticketing_expiry_jobs_scheduled_total") == 1
    assert (
        moved(before, after, "expiration", "ticketing_expiry_jobs_fired_total", outcome="published")
        == 1
    )
    assert moved(before, after, "expiration", "ticketing_expiry_firing_delay_seconds_count") == 1
    stripe_ok = moved(before, after, "payments", "ticketing_stripe_requests_total", outcome="ok")
    assert stripe_ok >= 3  # create, confirm, capture
    for service in ("tickets", "orders", "payments"):
        assert "ticketing_consumer_pending_messages" in after[service]
        assert "ticketing_outbox_pending_documents" in after[service]
    # Not through the gateway (nor the Ingress: the same table): `/metrics` is the web client's.
    async with httpx.AsyncClient() as http:
        res = await http.get(f"{stack.urls['gateway']}/metrics")
    assert res.status_code == 404
    assert "ticketing_" not in res.text

    # --- the timeline command --------------------------------------------------------------------
    capsys.readouterr()
    assert timeline.main([order_id, "--traces", str(traces_dir(stack))]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == f"order {order_id}"
    first = lines[2]
    assert first.split()[0] == "0.0ms"
    assert "orders" in first
    assert first.endswith("POST /api/orders")
    assert any("expiration" in line and "expire order" in line for line in lines)
    svg = traces_dir(stack) / f"order-{order_id}.svg"
    assert f"waterfall: {svg}" in printed
    assert svg.read_text().startswith("<svg")
    assert "handle payment.created" in svg.read_text()
    await assert_consistent(stack)
