"""The Prometheus metrics every service exports at `/metrics` (prometheus-client).

All are labelled with `service`, so one query groups by service whatever the scrape config
calls its jobs (and tests that run several services in one process stay apart). Counters are
counted where things happen; gauges of state (outbox, consumer lag, waiting expiry jobs) are
read when scraped (`scrape.py`).

- HTTP: `ticketing_http_requests_total` (method, route template, status) and the latency
  histogram `ticketing_http_request_duration_seconds`;
- the bus: `ticketing_events_published_total` (subject), `ticketing_events_consumed_total`
  (consumer, subject, outcome: ack, nak, dead, error), `..._redelivered_total`,
  `..._dead_lettered_total`, `ticketing_event_handling_duration_seconds`, and
  `ticketing_bus_publish_refused_total` (stream, reason: stream_full, store_full): publishes the
  server refused for lack of room (the outbox keeps them; the alert rule fires on it);
- state: `ticketing_outbox_pending_documents` and `ticketing_outbox_oldest_pending_age_seconds`
  (collection), `ticketing_consumer_pending_messages` (JetStream lag per durable) and
  `ticketing_consumer_ack_pending_messages`;
- expiry: `ticketing_expiry_jobs_scheduled_total`, `ticketing_expiry_jobs_waiting`,
  `ticketing_expiry_jobs_fired_total` (outcome) and `ticketing_expiry_firing_delay_seconds`;
- Stripe: `ticketing_stripe_requests_total` (operation, outcome: ok, declined, refused, error,
  unreachable) and `ticketing_stripe_request_duration_seconds`.

The last two expiry metrics are counted by the worker's jobs in Redis (each job is a process
of its own) and exported by the expiration service (`ticketing_expiration.firing`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_ACK_PENDING",
    "CONSUMER_PENDING",
    "DELIVERIES_HELD",
    "EVENTS_CONSUMED",
    "EVENTS_DEAD_LETTERED",
    "EVENTS_PUBLISHED",
    "EVENTS_REDELIVERED",
    "EXPIRY_FIRED",
    "EXPIRY_FIRING_DELAY",
    "EXPIRY_SCHEDULED",
    "EXPIRY_WAITING",
    "FIRING_BUCKETS",
    "HANDLING_DURATION",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_PENDING",
    "PUBLISH_REFUSED",
    "STRIPE_DURATION",
    "STRIPE_REQUESTS",
]

PREFIX = "ticketing_"

# Latency buckets for requests and handlers: 2.5 ms to 10 s.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How late an expiry fires: its scheduler polls every second.
FIRING_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)

HTTP_REQUESTS = Counter(
    "ticketing_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "ticketing_http_request_duration_seconds",
    "HTTP request latency, by route template and method",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "ticketing_events_published",
    "Events published (confirmed by the bus), by subject",
    ["service", "subject"],
)
EVENTS_CONSUMED = Counter(
    "ticketing_events_consumed",
    "Deliveries settled by a consumer: ack, nak (offered again later) or dead",
    ["service", "consumer", "subject", "outcome"],
)
EVENTS_REDELIVERED = Counter(
    "ticketing_events_redelivered",
    "Deliveries of a message that had been delivered before",
    ["service", "consumer", "subject"],
)
EVENTS_DEAD_LETTERED = Counter(
    "ticketing_events_dead_lettered",
    "Events dead-lettered by a consumer",
    ["service", "consumer", "subject"],
)
PUBLISH_REFUSED = Counter(
    "ticketing_bus_publish_refused",
    "Publishes the server refused for lack of room (stream at max_bytes, store full), by stream",
    ["service", "stream", "reason"],
)
DELIVERIES_HELD = Gauge(
    "ticketing_bus_deliveries_held",
    "Deliveries held because a dependency their handler needs is down, by dependency",
    ["service", "consumer", "dependency"],
)
HANDLING_DURATION = Histogram(
    "ticketing_event_handling_duration_seconds",
    "Time from a delivery's start to its settlement (handler included)",
    ["service", "consumer"],
    buckets=LATENCY_BUCKETS,
)
OUTBOX_PENDING = Gauge(
    "ticketing_outbox_pending_documents",
    "Documents whose outbox holds events not published yet",
    ["service", "collection"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "ticketing_outbox_oldest_pending_age_seconds",
    "Age of the oldest event waiting in an outbox (0: none)",
    ["service", "collection"],
)
CONSUMER_PENDING = Gauge(
    "ticketing_consumer_pending_messages",
    "Messages of a durable consumer not delivered yet (its lag)",
    ["service", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "ticketing_consumer_ack_pending_messages",
    "Messages of a durable consumer delivered and not acknowledged yet",
    ["service", "consumer"],
)
EXPIRY_SCHEDULED = Counter(
    "ticketing_expiry_jobs_scheduled",
    "Order expiry jobs scheduled",
    ["service"],
)
EXPIRY_WAITING = Gauge(
    "ticketing_expiry_jobs_waiting",
    "Order expiry jobs waiting in the schedule",
    ["service"],
)
# Exported from Redis by the expiration service (see the module's docstring).
EXPIRY_FIRED = "ticketing_expiry_jobs_fired"
EXPIRY_FIRING_DELAY = "ticketing_expiry_firing_delay_seconds"
STRIPE_REQUESTS = Counter(
    "ticketing_stripe_requests",
    "Requests to Stripe, by operation and outcome",
    ["service", "operation", "outcome"],
)
STRIPE_DURATION = Histogram(
    "ticketing_stripe_request_duration_seconds",
    "Stripe request latency, by operation",
    ["service", "operation"],
    buckets=LATENCY_BUCKETS,
)
