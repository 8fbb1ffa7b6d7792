"""Two buyers, one ticket, every interleaving of their steps (injected pauses), on mongomock and
nx-27017: exactly one open order, and the ticket held by it; a buyer that dies at any step never
leaves the ticket unsellable."""

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bson import ObjectId

from ticketing_common.mongo import Database
from ticketing_orders import repository, reservations

Buy = Callable[..., Awaitable[str]]
BUYERS = ("A", "B")
# Every schedule of this many turns; a turn lets one buyer run to its next pause. Longer than
# any buyer's path, so every interleaving of the two paths is among them.
TURNS = 8


class Interleaver:
    """Runs buyers as tasks that stop at every pause until the schedule gives them a turn."""

    def __init__(self) -> None:
        self.arrived = {b: asyncio.Event() for b in BUYERS}
        self.go = {b: asyncio.Event() for b in BUYERS}
        self.tasks: dict[str, asyncio.Task[str]] = {}
        self.trace: list[str] = []
        # The turns that decided the run: up to the one after which a buyer had finished.
        # Any schedule starting with them runs the same way (the rest is forced).
        self.decisive = ""

    def pause_for(self, buyer: str) -> reservations.Pause:
        async def pause(step: str) -> None:
            self.trace.append(f"{buyer}:{step}")
            self.arrived[buyer].set()
            await self.go[buyer].wait()
            self.go[buyer].clear()

        return pause

    async def _parked(self, buyer: str) -> None:
        """Until the buyer waits at a pause or has finished."""
        arrival = asyncio.ensure_future(self.arrived[buyer].wait())
        await asyncio.wait({arrival, self.tasks[buyer]}, return_when=asyncio.FIRST_COMPLETED)
        arrival.cancel()

    async def turn(self, buyer: str) -> None:
        if self.tasks[buyer].done():
            return
        self.arrived[buyer].clear()
        self.go[buyer].set()
        await self._parked(buyer)

    async def run(self, schedule: str, crash: str | None = None) -> dict[str, str]:
        """Each buyer's outcome: its order id, "reserved", or "crashed"."""
        for buyer in BUYERS:
            await self._parked(buyer)
        for n, buyer in enumerate(schedule):
            await self.turn(buyer)
            if not self.decisive and any(t.done() for t in self.tasks.values()):
                self.decisive = schedule[: n + 1]
        if crash is not None and not self.tasks[crash].done():
            self.tasks[crash].cancel()  # the process died at the pause it is waiting at
        while not all(t.done() for t in self.tasks.values()):
            for buyer in BUYERS:
                await self.turn(buyer)
        return {b: "crashed" if t.cancelled() else t.result() for b, t in self.tasks.items()}


async def open_orders(db: Database, ticket_id: str) -> list[str]:
    docs = await db["orders"].find({"ticketId": ticket_id}).to_list()
    return [
        str(d["_id"]) for d in docs if d["confirmed"] and d["status"] in repository.OPEN_STATUSES
    ]


@pytest.fixture(autouse=True)
def no_patience(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule decides who waits: a parked buyer would only be waited for in vain."""
    monkeypatch.setattr(reservations, "CONFIRM_PATIENCE_SECONDS", 0.0)


@pytest.fixture
def mongo_client(any_mongo: Any) -> Any:
    return any_mongo


async def fresh_ticket(client: Any, n: int) -> tuple[Any, str]:
    db = client[f"interleaving{n}"]
    ticket_id = str(ObjectId())
    await db["tickets"].insert_one(
        {"_id": ticket_id, "title": "t", "priceCents": 500, "version": 0, "reservedBy": None}
    )
    return db, ticket_id


SCHEDULES = ["".join(s) for s in itertools.product(BUYERS, repeat=TURNS)]


async def test_every_interleaving_of_two_buyers_has_exactly_one_winner(
    mongo_client: Any, buy: Buy
) -> None:
    traces: set[tuple[str, ...]] = set()
    withdrawn_before_confirming = False
    decided: set[str] = set()
    for n, schedule in enumerate(SCHEDULES):
        if any(schedule.startswith(prefix) for prefix in decided):
            continue  # the same interleaving as a schedule already run
        db, ticket_id = await fresh_ticket(mongo_client, n)
        run = Interleaver()
        run.tasks = {b: asyncio.create_task(buy(db, ticket_id, run.pause_for(b))) for b in BUYERS}
        outcome = await run.run(schedule)
        if run.decisive:
            decided.add(run.decisive)
        traces.add(tuple(run.trace))
        withdrawn_before_confirming |= any(
            outcome[b] == "reserved" and f"{b}:confirm" in run.trace for b in BUYERS
        )
        winners = [o for o in outcome.values() if o != "reserved"]
        context = (schedule, run.trace, outcome)
        assert len(winners) == 1, context
        assert await open_orders(db, ticket_id) == winners, context
        ticket = await db["tickets"].find_one({"_id": ticket_id})
        assert ticket["reservedBy"] == winners[0], context
        # The loser left nothing behind: no order of its own, visible or not.
        assert await db["orders"].count_documents({"ticketId": ticket_id}) == 1, context
    # The schedules really interleave: the takeover paths were taken, not only "A then B".
    steps = {step.split(":")[1] for trace in traces for step in trace}
    assert {"insert", "reserve", "check holder", "withdraw", "take over", "confirm"} <= steps
    # Among them: a buyer withdrawn after reserving, whose confirmation then found nothing.
    assert withdrawn_before_confirming
    assert len(traces) >= 10, traces


@pytest.mark.parametrize("crash", BUYERS)
async def test_a_buyer_that_dies_at_any_step_never_leaves_the_ticket_stuck(
    mongo_client: Any, buy: Buy, crash: str
) -> None:
    decided: set[str] = set()
    for n, schedule in enumerate(SCHEDULES):
        if any(schedule.startswith(prefix) for prefix in decided):
            continue
        db, ticket_id = await fresh_ticket(mongo_client, 10_000 + n)
        run = Interleaver()
        run.tasks = {b: asyncio.create_task(buy(db, ticket_id, run.pause_for(b))) for b in BUYERS}
        outcome = await run.run(schedule, crash=crash)
        if run.decisive:
            decided.add(run.decisive)
        context = (schedule, run.trace, outcome)
        winners = [o for o in outcome.values() if o not in ("reserved", "crashed")]
        assert len(winners) <= 1, context
        # A later buyer gets the ticket unless a live buyer holds it: it is never stuck.
        late = await buy(db, ticket_id)
        assert (late == "reserved") == bool(winners), context
        holders = await open_orders(db, ticket_id)
        assert holders == (winners or [late]), context
        ticket = await db["tickets"].find_one({"_id": ticket_id})
        assert ticket["reservedBy"] == holders[0], context
