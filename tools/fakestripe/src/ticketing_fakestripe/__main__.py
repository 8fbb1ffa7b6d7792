"""`python -m ticketing_fakestripe --host 127.0.0.1 --port 12111`: the fake for local runs."""

from __future__ import annotations

import argparse

import uvicorn

from ticketing_fakestripe.app import create_app
from ticketing_fakestripe.server import require_loopback

DEFAULT_PORT = 12111  # stripe-mock's port, so habits and configs carry over


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ticketing_fakestripe",
        description="A Stripe-compatible fake (PaymentIntents, Refunds), on loopback only.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    try:
        host = require_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    uvicorn.run(create_app(), host=host, port=args.port, log_level="info", ws="none")


if __name__ == "__main__":
    main()
