"""Structured logs: one JSON line per record, with the service name and ids passed in `extra`."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from ticketing_common.telemetry.tracing import TraceContextFilter

__all__ = [
    "configure_logging",
]


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        # Uvicorn adds an ANSI-coloured copy of its message; in JSON it is only noise.
        record.__dict__.pop("color_message", None)
        return True


def configure_logging(service: str, level: str = "INFO", *, access_log: bool = False) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ServiceFilter(service))
    handler.addFilter(TraceContextFilter())  # trace_id, span_id
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{service}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
        )
    )
    handler.set_name("ticketing")
    root = logging.getLogger()
    # Replace only our own handler, so calling this twice (or under pytest's capture) is safe.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "ticketing"] + [handler]
    root.setLevel(level.upper())
    # Uvicorn's logs would be a second, unstructured format; route them through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
        # A `dictConfig` elsewhere in the process (its default disables existing loggers, and
        # uvicorn's sets levels) must not silence them: they log at our level.
        logging.getLogger(name).disabled = False
        logging.getLogger(name).setLevel(logging.NOTSET)
    # Off unless asked for: uvicorn formats an access line only when its logger has a handler
    # (`hasHandlers()`, which follows propagation), so without one the cost is nil.
    logging.getLogger("uvicorn.access").propagate = access_log
