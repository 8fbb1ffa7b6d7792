"""Observability: Prometheus metrics (`metrics`, served by `scrape`), OpenTelemetry traces
(`tracing`, exported over OTLP and/or as JSON lines by `jsonlines`), and the hooks that observe
HTTP (`http`) and Stripe (`stripe`). See each module; the service factory installs them all.
`_unsampled` is private: the not-sampled short cut that `tracing` takes."""

__all__ = ["http", "jsonlines", "metrics", "scrape", "stripe", "tracing"]
