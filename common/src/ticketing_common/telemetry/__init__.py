"""Observability: Prometheus metrics (`metrics`, served by `scrape`), OpenTelemetry traces
(`tracing`, exported over OTLP and/or as JSON lines by `jsonlines`), and the hooks that observe
HTTP (`http`) and the bus (`bus`). See each module; the service factory installs them all."""
