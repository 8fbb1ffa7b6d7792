"""Everything the fake remembers, behind one lock: the ledger, idempotency keys, the failures
a test injected, and how many requests arrived."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from ticketing_fakestripe.errors import Json, Rejected, stripe_error
from ticketing_fakestripe.ledger import Ledger, Operation
from ticketing_fakestripe.wire import decode_form

IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than '{key}' if you meant to execute a different request."
)
IDEMPOTENCY_OTHER_ENDPOINT = (
    "Keys for idempotent requests can only be used for the same endpoint they were first used "
    "for ('{first}' vs '{this}'). Try using a key other than '{key}' if you meant to execute a "
    "different request."
)


@dataclass(frozen=True)
class Injection:
    """An injected failure: its status, and whether the request is carried out first."""

    status: int
    after_commit: bool


@dataclass(frozen=True)
class _Saved:
    endpoint: str
    body_hash: str
    status: int
    body: Json


class FakeState:
    """Everything the fake remembers.

    The server runs on its own thread (`FakeStripeServer`) while tests read this object from
    theirs, so every access goes through the lock and readers get copies.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledger = Ledger()
        self._saved: dict[str, _Saved] = {}  # idempotency key -> the first response
        self._fail_count = 0
        self._fail = Injection(status=500, after_commit=False)
        self._fail_path: str | None = None
        self._requests = 0

    def reset(self) -> None:
        with self._lock:
            self._ledger = Ledger()
            self._saved.clear()
            self._fail_count = 0
            self._fail = Injection(status=500, after_commit=False)
            self._fail_path = None
            self._requests = 0

    def fail_next(
        self, count: int, status: int = 500, *, after_commit: bool = False, path: str | None = None
    ) -> None:
        """Make the next `count` /v1 requests (whose path contains `path`, if given) fail.

        With `after_commit` they are carried out first and only their responses are lost.
        """
        with self._lock:
            self._fail_count = count
            self._fail = Injection(status=status, after_commit=after_commit)
            self._fail_path = path

    def intents(self) -> list[Json]:
        """Every PaymentIntent created, oldest first (copies)."""
        with self._lock:
            return [dict(pi) for pi in self._ledger.intents.values()]

    def charges(self) -> list[Json]:
        """Every attempt to charge a card, declined ones included, oldest first (copies)."""
        with self._lock:
            return [dict(ch) for ch in self._ledger.charges.values()]

    def refunds(self) -> list[Json]:
        """Every refund, oldest first (copies)."""
        with self._lock:
            return [dict(re) for re in self._ledger.refunds.values()]

    @property
    def requests(self) -> int:
        """How many /v1 requests arrived, injected failures included."""
        with self._lock:
            return self._requests

    def admit(self, path: str) -> Injection | None:
        """Count a /v1 request; the failure to inject into it, or None to serve it."""
        with self._lock:
            self._requests += 1
            if self._fail_count > 0 and (self._fail_path is None or self._fail_path in path):
                self._fail_count -= 1
                return self._fail
            return None

    def execute(
        self, operation: Operation, raw: bytes, *, endpoint: str, key: str | None
    ) -> tuple[int, Json, bool]:
        """Run a POST, or replay it for its idempotency key: (status, body, replayed)."""
        body_hash = hashlib.sha256(raw).hexdigest()
        with self._lock:
            saved = self._saved.get(key) if key is not None else None
            if saved is not None:
                if saved.endpoint != endpoint:
                    message = IDEMPOTENCY_OTHER_ENDPOINT.format(
                        first=saved.endpoint, this=endpoint, key=key
                    )
                    return 400, stripe_error("idempotency_error", message), False
                if saved.body_hash != body_hash:
                    return (
                        400,
                        stripe_error("idempotency_error", IDEMPOTENCY_MISMATCH.format(key=key)),
                        False,
                    )
                return saved.status, saved.body, True
            try:
                status, body = operation(self._ledger, decode_form(raw))
            except Rejected as rejected:
                status, body = rejected.status, rejected.body
            # Stripe saves a result only once the request began executing: a request refused
            # up front (400, 404) is not saved; a decline (402) is, and is replayed.
            if key is not None and status not in (400, 404):
                self._saved[key] = _Saved(endpoint, body_hash, status, body)
            return status, body, False

    def get(self, intent_id: str) -> Json | None:
        with self._lock:
            intent = self._ledger.intents.get(intent_id)
            return dict(intent) if intent is not None else None

    def get_refund(self, refund_id: str) -> Json | None:
        with self._lock:
            refund = self._ledger.refunds.get(refund_id)
            return dict(refund) if refund is not None else None
