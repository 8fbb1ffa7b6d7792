"""The retry rules: when a delivery that was not acked is offered again, and when it is dead.

Counting. The server-side consumer has no delivery limit (`max_deliver = -1`): a count kept by
JetStream cannot tell a RetryLater deferral (harmless, must not run out) from a failure (must).
So the bus counts failures itself, per process and message, and decides about dead letters.
What the server does say is still obeyed: if a durable's actual `max_deliver` is finite (a
consumer that could not be reconciled), the delivery that reaches it is the last one JetStream
will make, so a failure there is dead-lettered rather than silently dropped.

The RetryLater horizon is measured from the server's facts, so a restart does not reset it: the
event's age in the stream, and the time its deliveries have spent in backoff (computed from the
server's delivery count). Dead-lettering needs both to exceed the horizon: age alone would
throw away the backlog of a consumer that comes back from a long outage (an event older than
the horizon whose predecessor is a few messages behind it), and the backoff estimate alone
could outrun the clock if deliveries were also spent on failures.

Pure: `decide` is the delivery loop's rules without the loop (see `_dispatcher`), and
`RetryPolicy.from_settings` is the one place the settings become a policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ticketing_common.settings import ServiceSettings

__all__ = [
    "DEFAULT_RETRY_HORIZON",
    "MAX_HOLD_DELAY",
    "MAX_RETRY_DELAY",
    "UNLIMITED",
    "Decision",
    "Outcome",
    "RetryPolicy",
    "Verdict",
    "decide",
]

MAX_RETRY_DELAY = 30.0
# A held delivery is re-run at most this far apart: the flow resumes within seconds of the
# dependency coming back, at the cost of one handler call per period while it is down.
MAX_HOLD_DELAY = 5.0
DEFAULT_RETRY_HORIZON = 3600.0
# JetStream's "no limit" for a consumer's max_deliver.
UNLIMITED = -1


class Verdict(Enum):
    """How a delivery was settled."""

    ACK = "ack"
    NAK = "nak"
    DEAD = "dead"


@dataclass(frozen=True)
class Decision:
    """What to do with a delivery that was not acked: its verdict, the delay before it is
    offered again (a nak), and the error it is dead-lettered with."""

    verdict: Verdict
    delay: float = 0.0
    error: str = ""


class Outcome(Enum):
    """Why a handler did not finish with an event."""

    RETRY_LATER = "retry later"
    FAILED = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often an event is offered again; one per bus, read per delivery."""

    max_deliver: int = 5  # failed deliveries (poison) before the dead letters
    retry_delay: float = 0.5  # the first delay; doubles each time
    max_retry_delay: float = MAX_RETRY_DELAY
    horizon: float = DEFAULT_RETRY_HORIZON  # how long a RetryLater event may wait
    max_hold_delay: float = MAX_HOLD_DELAY

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RetryPolicy:
        """The policy a service's settings describe (NATS_MAX_DELIVER,
        NATS_RETRY_DELAY_SECONDS, NATS_RETRY_HORIZON_SECONDS)."""
        return cls(
            max_deliver=settings.nats_max_deliver,
            retry_delay=settings.nats_retry_delay_seconds,
            horizon=settings.nats_retry_horizon_seconds,
        )

    @property
    def poison_budget(self) -> float:
        """How long a failing (poison) event keeps being offered before it is dead-lettered:
        the waits between its `max_deliver` failed deliveries."""
        return self.waited(self.max_deliver)

    def backoff(self, n: int) -> float:
        """The delay before the (n+1)th offer, n >= 1; the exponent is bounded so a message
        offered thousands of times cannot overflow a float."""
        return min(self.retry_delay * 2.0 ** min(max(n, 1) - 1, 64), self.max_retry_delay)

    def hold_delay(self, n: int) -> float:
        """The delay before a held delivery's (n+1)th run, n >= 1."""
        return min(self.retry_delay * 2.0 ** min(max(n, 1) - 1, 64), self.max_hold_delay)

    def waited(self, delivered: int) -> float:
        """Time a message on its `delivered`th delivery has spent in backoff, had each earlier
        delivery been deferred (derived from the server's count, so it survives restarts)."""
        total = 0.0
        for n in range(1, delivered):
            step = self.backoff(n)
            if step >= self.max_retry_delay:
                return total + step * (delivered - n)
            total += step
        return total


def decide(
    outcome: Outcome,
    *,
    error: str,
    delivered: int,
    failures: int,
    age: float,
    policy: RetryPolicy,
    server_max_deliver: int = UNLIMITED,
) -> Decision:
    """What to do with a delivery that was not acked (pure: the delivery loop's rules).

    `delivered` is the server's count for this message, `failures` the bus's own count of its
    failed deliveries (this one included), `age` the seconds since the stream stored it.
    """
    if 0 < server_max_deliver <= delivered:
        # JetStream will not deliver it again: a nak now would lose it without a trace.
        return Decision(Verdict.DEAD, error=f"{error} (last delivery the server allows)")
    if outcome is Outcome.RETRY_LATER:
        if min(age, policy.waited(delivered)) >= policy.horizon:
            return Decision(Verdict.DEAD, error=f"{error} (waited past the retry horizon)")
        return Decision(Verdict.NAK, delay=policy.backoff(delivered), error=error)
    if failures >= policy.max_deliver:
        return Decision(Verdict.DEAD, error=error)
    return Decision(Verdict.NAK, delay=policy.backoff(failures), error=error)
