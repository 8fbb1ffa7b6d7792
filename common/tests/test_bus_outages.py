"""The event flow under long outages (issue 8), on the fake bus and on a real nats-server.

What is not the event's fault (a dependency down, an earlier event still on its way) never uses
up its deliveries; a slow handler is not redelivered concurrently; a durable left with other
settings on the server is brought to the configured ones, or dead-letters at the server's limit.
"""

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import nats
import nats.js.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from pymongo.errors import ServerSelectionTimeoutError

from ticketing_common.bus import (
    BusUnavailable,
    DependencyUnavailable,
    OperatorBus,
    RetryLater,
    dependency_of,
    durable_name,
)
from ticketing_common.bus import Dependency as Needed
from ticketing_common.bus.jetstream import declare_streams
from ticketing_common.bus.streams import stream_for
from ticketing_common.events import Event, Subject, TicketCreated, TicketUpdated, new_event
from ticketing_common.service import Handlers, ServiceSpec, handles
from ticketing_testing.servers import ServerProcess
from ticketing_testing.waiting import eventually, started

BusFactory = Callable[..., OperatorBus]


def ticket(n: int = 1) -> Event[TicketCreated]:
    return new_event(TicketCreated(id=f"t{n}", version=0, title="show", price=10.0, user_id="u"))


def ticket_updated(n: int = 1) -> Event[TicketUpdated]:
    return new_event(TicketUpdated(id=f"t{n}", version=1, title="show", price=10.0, user_id="u"))


class Dependency:
    """A handler's database: while `down`, every call fails as an unreachable one does."""

    def __init__(self, error: Callable[[], Exception] = lambda: DependencyUnavailable("db")):
        self.down = True
        self.error = error
        self.calls: list[float] = []
        self.applied: list[str] = []

    async def __call__(self, event: Event[Any]) -> None:
        self.calls.append(time.monotonic())
        if self.down:
            raise self.error()
        self.applied.append(event.id)

    def held_for(self) -> float:
        return self.calls[-1] - self.calls[0] if self.calls else 0.0


class Broken:
    """A handler with a bug: every delivery fails. The deliveries it saw."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    async def __call__(self, event: Event[Any]) -> None:
        self.attempts.append(event.id)
        raise RuntimeError("bug")


async def the_dead_letter(bus: OperatorBus) -> Any:
    """The bus's one dead letter, once there is one."""

    async def dead() -> bool:
        return len(await bus.dead_letters()) == 1

    await eventually(dead, timeout=15)
    [letter] = await bus.dead_letters()
    return letter


async def server_view(make_bus: BusFactory, durable: str, subject: Subject) -> tuple[int, int]:
    """(messages delivered and not acked yet, messages among them delivered more than once),
    as the server sees the durable."""
    server: ServerProcess | None = make_bus.server  # type: ignore[attr-defined]
    if server is None:
        consumer = make_bus.broker.consumers[durable]  # type: ignore[attr-defined]
        return len(consumer.in_flight), sum(1 for p in consumer.queue if p.deliveries > 1)
    nc = await nats.connect(f"nats://{server.url}")
    try:
        info = await nc.jetstream().consumer_info(stream_for(subject.wire), durable)
        return info.num_ack_pending or 0, info.num_redelivered or 0
    finally:
        await nc.close()


async def precreate_durable(
    make_bus: BusFactory, durable: str, subject: Subject, *, max_deliver: int, new_only: bool
) -> None:
    """A durable as an earlier version (or an operator) left it on the server."""
    server: ServerProcess | None = make_bus.server  # type: ignore[attr-defined]
    if server is None:
        make_bus.broker.consumer(  # type: ignore[attr-defined]
            durable, subject.wire, max_deliver=max_deliver, deliver_all=not new_only
        )
        return
    nc = await nats.connect(f"nats://{server.url}")
    try:
        js = nc.jetstream()
        # Not the contract's durables: this one is made as the earlier version made it.
        await declare_streams(js, consumers={})
        await js.add_consumer(
            stream_for(subject.wire),
            ConsumerConfig(
                name=durable,
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW if new_only else DeliverPolicy.ALL,
                ack_wait=5,
                max_deliver=max_deliver,
                filter_subject=subject.wire,
            ),
        )
    finally:
        await nc.close()


class HeldAndOther(NamedTuple):
    """A service holding one event while `down` is down, with another event for its other
    consumer published after the hold began."""

    bus: OperatorBus
    down: Dependency
    held: Event[TicketCreated]
    other: Event[TicketUpdated]
    replica: list[str]  # the ids the other consumer applied


async def hold_one_and_publish_another(
    make_bus: BusFactory,
    service: str,
    down: Dependency,
    other: Event[TicketUpdated],
    *,
    held_needs: frozenset[str] | None = None,
    other_needs: frozenset[str] | None = None,
) -> HeldAndOther:
    """`service` consumes ticket:created with `down` and ticket:updated into a replica; a
    ticket:created is published and, once `down` has been tried twice (so it is held), `other`."""
    bus = make_bus(service, max_deliver=2, max_hold_delay=0.1)
    producer = make_bus("tickets")
    replica: list[str] = []

    async def on_update(event: Event[Any]) -> None:
        replica.append(event.id)

    bus.subscribe(Subject.TICKET_CREATED, down, needs=held_needs)
    bus.subscribe(Subject.TICKET_UPDATED, on_update, needs=other_needs)
    await started(bus)
    await started(producer)
    held = ticket()
    await producer.publish(held)
    await eventually(lambda: len(down.calls) >= 2)
    await producer.publish(other)
    return HeldAndOther(bus, down, held, other, replica)


async def assert_the_other_waits_for_the_held(run: HeldAndOther) -> None:
    """The other consumer pulls nothing while the event is held; both land once `down` is
    back, with no dead letter."""
    # Several more tries of the held event: the other consumer had all that time to pull.
    tries = len(run.down.calls)
    await eventually(lambda: len(run.down.calls) >= tries + 4, timeout=10)
    assert run.replica == []
    run.down.down = False
    await eventually(lambda: run.down.applied == [run.held.id] and run.replica == [run.other.id])
    assert await run.bus.dead_letters() == []


# --- 1. infrastructure failures never use up deliveries -------------------------------------


async def test_an_unreachable_dependency_holds_the_event_without_using_its_deliveries(
    make_bus: BusFactory,
) -> None:
    """Held for longer than twice ack_wait, tried far more often than max_deliver: the same
    delivery all along (not redelivered, not to the other process), then applied, no dead
    letter."""
    bus = make_bus("orders", ack_wait=1.0, max_deliver=2, max_hold_delay=0.2)
    other_process = make_bus("orders", ack_wait=1.0, max_deliver=2)
    producer = make_bus("tickets")
    db = Dependency()
    other = Dependency()
    other.down = False
    bus.subscribe(Subject.TICKET_CREATED, db)
    await started(bus)
    await started(producer)
    event = ticket()
    await producer.publish(event)
    await eventually(lambda: len(db.calls) >= 2)
    other_process.subscribe(Subject.TICKET_CREATED, other)
    await started(other_process)
    await eventually(lambda: db.held_for() > 2.5, timeout=10)
    durable = durable_name("orders", Subject.TICKET_CREATED)
    assert await server_view(make_bus, durable, Subject.TICKET_CREATED) == (1, 0)
    assert len(db.calls) > 2  # tried more often than max_deliver
    db.down = False  # the database is back: the bus resumes by itself
    await eventually(lambda: db.applied == [event.id])
    assert other.applied == []
    assert await bus.dead_letters() == []


async def test_a_held_service_pulls_nothing_more_until_the_dependency_is_back(
    make_bus: BusFactory,
) -> None:
    # A Mongo that cannot be reached, as pymongo reports it.
    db = Dependency(lambda: ServerSelectionTimeoutError("mongo: connection refused"))
    run = await hold_one_and_publish_another(make_bus, "orders", db, ticket_updated())
    await assert_the_other_waits_for_the_held(run)


async def test_an_event_deferred_more_often_than_max_deliver_still_lands(
    make_bus: BusFactory,
) -> None:
    bus = make_bus("orders", max_deliver=2, max_retry_delay=0.1)
    attempts: list[str] = []
    applied: list[str] = []

    async def waits_for_its_predecessor(event: Event[Any]) -> None:
        attempts.append(event.id)
        if len(attempts) < 6:
            raise RetryLater("version 0 not here yet")
        applied.append(event.id)

    bus.subscribe(Subject.TICKET_CREATED, waits_for_its_predecessor)
    await started(bus)
    event = ticket()
    await bus.publish(event)
    await eventually(lambda: applied == [event.id], timeout=10)
    assert len(attempts) == 6
    assert await bus.dead_letters() == []


async def test_an_event_deferred_past_the_retry_horizon_is_dead_lettered(
    make_bus: BusFactory,
) -> None:
    horizon = 1.0
    bus = make_bus("orders", max_deliver=2, max_retry_delay=0.2, retry_horizon=horizon)
    attempts: list[float] = []

    async def never_its_turn(event: Event[Any]) -> None:
        attempts.append(time.monotonic())
        raise RetryLater("version 0 was lost")

    bus.subscribe(Subject.TICKET_CREATED, never_its_turn)
    await started(bus)
    published_at = time.monotonic()
    await bus.publish(ticket())
    letter = await the_dead_letter(bus)
    assert "retry later" in letter.error
    assert "horizon" in letter.error
    assert letter.deliveries == len(attempts) > 2  # far more than max_deliver
    assert attempts[-1] - published_at >= horizon


# --- 2. a handler slower than ack_wait is not redelivered -------------------------------------


async def test_a_handler_slower_than_ack_wait_is_delivered_once(make_bus: BusFactory) -> None:
    """Like a Stripe call that takes longer than ack_wait: progress is signalled, so neither
    this process nor another one gets the event again while it runs."""
    first, second = make_bus("payments", ack_wait=1.0), make_bus("payments", ack_wait=1.0)
    calls: list[str] = []
    done: list[str] = []

    async def slow(event: Event[Any]) -> None:
        calls.append(event.id)
        await asyncio.sleep(3.0)  # the slow dependency being modelled, three times ack_wait
        done.append(event.id)

    first.subscribe(Subject.TICKET_CREATED, slow)
    second.subscribe(Subject.TICKET_CREATED, slow)
    await started(first)
    await started(second)
    event = ticket()
    await first.publish(event)
    await eventually(lambda: done == [event.id], timeout=10)
    assert calls == [event.id]


# --- 3. a durable's config on the server is reconciled --------------------------------------


async def test_a_durable_left_with_a_lower_max_deliver_is_brought_to_the_settings(
    make_bus: BusFactory,
) -> None:
    """Created earlier with max_deliver=3, started with 6: without reconciliation JetStream
    stops after 3 deliveries and the event vanishes, with no dead letter and no error."""
    durable = durable_name("orders", Subject.TICKET_CREATED)
    await precreate_durable(
        make_bus, durable, Subject.TICKET_CREATED, max_deliver=3, new_only=False
    )
    bus = make_bus("orders", max_deliver=6, max_retry_delay=0.1)
    broken = Broken()
    bus.subscribe(Subject.TICKET_CREATED, broken)
    await started(bus)
    event = ticket()
    await bus.publish(event)
    letter = await the_dead_letter(bus)
    assert (letter.deliveries, len(broken.attempts)) == (6, 6)
    assert "RuntimeError: bug" in letter.error


async def test_a_durable_that_cannot_be_updated_dead_letters_at_the_servers_limit(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A field JetStream cannot change in place (the deliver policy) blocks the update: the bus
    says so and decides from the server's actual max_deliver, so its last delivery is
    dead-lettered instead of silently dropped."""
    caplog.set_level(logging.ERROR, logger="ticketing.bus")
    durable = durable_name("orders", Subject.TICKET_CREATED)
    await precreate_durable(make_bus, durable, Subject.TICKET_CREATED, max_deliver=3, new_only=True)
    bus = make_bus("orders", max_deliver=6, max_retry_delay=0.1)
    broken = Broken()
    bus.subscribe(Subject.TICKET_CREATED, broken)
    await started(bus)
    await eventually(lambda: any("cannot be updated in place" in r.message for r in caplog.records))
    await bus.publish(ticket())
    letter = await the_dead_letter(bus)
    assert (letter.deliveries, len(broken.attempts)) == (3, 3)
    assert "last delivery the server allows" in letter.error


@pytest.mark.connected
async def test_reconciliation_updates_the_durable_on_the_server(
    nats_server: ServerProcess,
) -> None:
    url = f"nats://{nats_server.url}"
    nc = await nats.connect(url)
    js = nc.jetstream()
    # As an earlier version declared the stream: no re-drive subjects yet.
    await js.add_stream(StreamConfig(name="TICKETS", subjects=["ticket.>"]))
    durable = durable_name("orders", Subject.TICKET_CREATED)
    await js.add_consumer(
        "TICKETS",
        ConsumerConfig(
            name=durable,
            durable_name=durable,
            ack_wait=30,
            max_deliver=3,
            filter_subject="ticket.created",
        ),
    )
    from ticketing_common.bus import JetStreamBus

    bus = JetStreamBus(url, "orders", ack_wait=7.0, max_deliver=10)

    async def ignore(event: Event[Any]) -> None:
        return None

    bus.subscribe(Subject.TICKET_CREATED, ignore)
    await started(bus)
    try:

        async def reconciled() -> bool:
            config = (await js.consumer_info("TICKETS", durable)).config
            return (config.max_deliver, config.ack_wait, sorted(config.filter_subjects or [])) == (
                -1,
                7.0,
                ["redrive.ticket.created.orders-ticket-created", "ticket.created"],
            )

        await eventually(reconciled)
        stream = await js.stream_info("TICKETS")
        assert sorted(stream.config.subjects or []) == ["redrive.ticket.>", "ticket.>"]
    finally:
        await bus.close()
        await nc.close()


# --- 4. a hold pauses only the consumers that need what is down (issue 21, item 3) ------------

MONGO_AND_STRIPE = frozenset({Needed.MONGO, Needed.STRIPE})
MONGO_ONLY = frozenset({Needed.MONGO})


async def payments_holding_one_event(make_bus: BusFactory, down: Dependency) -> HeldAndOther:
    """Payments holding a ticket:created (its handler needs Mongo and Stripe, one of which
    `down` stands for), with a ticket:updated for its Mongo-only consumer published since."""
    return await hold_one_and_publish_another(
        make_bus,
        "payments",
        down,
        ticket_updated(2),
        held_needs=MONGO_AND_STRIPE,
        other_needs=MONGO_ONLY,
    )


async def test_a_stripe_hold_does_not_pause_a_consumer_that_does_not_need_stripe(
    make_bus: BusFactory,
) -> None:
    """Payments' capture held while Stripe answers 5xx; its order:created consumer (Mongo only)
    goes on, so a new order still reaches the replica. The held event lands once Stripe is
    back, using up none of its deliveries."""
    stripe = Dependency(lambda: DependencyUnavailable("stripe: 500", dependency="stripe"))
    bus, _, held, other, replica = await payments_holding_one_event(make_bus, stripe)
    await eventually(lambda: replica == [other.id])
    assert stripe.applied == []  # still held: Stripe is still down
    stripe.down = False
    await eventually(lambda: stripe.applied == [held.id])
    assert await bus.dead_letters() == []


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(lambda: ServerSelectionTimeoutError("mongo: refused"), id="mongo"),
        pytest.param(lambda: BusUnavailable("nats: not connected"), id="nats"),
        pytest.param(lambda: DependencyUnavailable("something is down"), id="unnamed"),
        pytest.param(lambda: TimeoutError(), id="bare-timeout"),
    ],
)
async def test_a_hold_on_what_every_consumer_needs_pauses_them_all(
    make_bus: BusFactory, outage: Callable[[], Exception]
) -> None:
    """Mongo (every handler of a service with a database needs it), NATS, or a failure that does
    not say what is down: the other consumer pulls nothing while the delivery is held."""
    run = await payments_holding_one_event(make_bus, Dependency(outage))
    await assert_the_other_waits_for_the_held(run)


# --- 5. a wiped store numbers its messages from 1 again (issue 21, item 5) --------------------


async def wipe_store(make_bus: BusFactory, subject: Subject, durable: str) -> None:
    """The stream holding `subject` loses its messages and durables, as with a new volume: its
    next message gets the first sequence number again. Returns once `durable` is back (its
    bus sets it up again), so that a message published next is kept for it."""
    server: ServerProcess | None = make_bus.server  # type: ignore[attr-defined]
    if server is None:
        broker = make_bus.broker  # type: ignore[attr-defined]
        broker.messages.clear()
        broker.stored_at.clear()
        broker.headers.clear()
        for consumer in broker.consumers.values():
            consumer.queue.clear()
            consumer.in_flight.clear()
        return
    nc = await nats.connect(f"nats://{server.url}")
    try:
        js = nc.jetstream()
        stream = stream_for(subject.wire)
        await js.delete_stream(stream)
        await declare_streams(js)

        async def durable_back() -> bool:
            try:
                await js.consumer_info(stream, durable)
            except nats.js.errors.NotFoundError:
                return False
            return True

        await eventually(durable_back, timeout=10)
    finally:
        await nc.close()


async def last_sequence(make_bus: BusFactory, subject: Subject) -> int:
    """The sequence of the last message the stream stored (acked ones removed or not)."""
    server: ServerProcess | None = make_bus.server  # type: ignore[attr-defined]
    if server is None:
        return len(make_bus.broker.messages) - 1  # type: ignore[attr-defined]
    nc = await nats.connect(f"nats://{server.url}")
    try:
        info = await nc.jetstream().stream_info(stream_for(subject.wire))
        return info.state.last_seq
    finally:
        await nc.close()


async def test_a_message_after_a_wiped_store_does_not_inherit_an_old_failure_count(
    make_bus: BusFactory,
) -> None:
    """Message 1 fails max_deliver - 1 times (then waits for its predecessor, keeping its count),
    the store is wiped, and the new message 1 fails once: a first failure, offered again and
    applied, not dead-lettered with the old message's count."""
    bus = make_bus("orders", max_deliver=3, max_retry_delay=0.1)
    old, new = ticket(1), ticket(2)
    attempts: collections.Counter[str] = collections.Counter()
    applied: list[str] = []

    async def handler(event: Event[Any]) -> None:
        attempts[event.id] += 1
        if event.id == old.id and attempts[old.id] > 2:
            raise RetryLater("its predecessor is lost")
        if attempts[event.id] <= (2 if event.id == old.id else 1):
            raise RuntimeError("bug")
        applied.append(event.id)

    bus.subscribe(Subject.TICKET_CREATED, handler)
    await started(bus)
    await bus.publish(old)
    await eventually(lambda: attempts[old.id] >= 3)  # two failures counted, then deferred
    seq = await last_sequence(make_bus, Subject.TICKET_CREATED)
    await wipe_store(
        make_bus, Subject.TICKET_CREATED, durable_name("orders", Subject.TICKET_CREATED)
    )
    await bus.publish(new)
    assert await last_sequence(make_bus, Subject.TICKET_CREATED) == seq  # numbered again

    async def settled() -> bool:
        return new.id in applied or bool(await bus.dead_letters())

    await eventually(settled, timeout=10)
    assert await bus.dead_letters() == []
    assert attempts[new.id] == 2


async def test_a_message_after_a_wiped_store_is_not_taken_for_one_in_flight(
    make_bus: BusFactory,
) -> None:
    """Message 1's handler hangs; the store is wiped and the new message 1 arrives: it is
    handled, not given back again and again as if it were the hung one handed out twice."""
    bus = make_bus("orders", ack_wait=1.0)
    old, new = ticket(1), ticket(2)
    hung = asyncio.Event()  # never set: the old handler hangs until the bus closes
    applied: list[str] = []

    async def handler(event: Event[Any]) -> None:
        if event.id == old.id:
            await hung.wait()
        applied.append(event.id)

    bus.subscribe(Subject.TICKET_CREATED, handler)
    await started(bus)
    await bus.publish(old)
    durable = durable_name("orders", Subject.TICKET_CREATED)

    async def old_in_flight() -> bool:
        return (await server_view(make_bus, durable, Subject.TICKET_CREATED))[0] == 1

    await eventually(old_in_flight)
    await wipe_store(make_bus, Subject.TICKET_CREATED, durable)
    await bus.publish(new)
    await eventually(lambda: applied == [new.id], timeout=10)


def test_a_failure_names_the_dependency_that_is_down() -> None:
    from pymongo.errors import AutoReconnect

    assert DependencyUnavailable("500", dependency="stripe").dependency == "stripe"
    assert dependency_of(DependencyUnavailable("500", dependency=Needed.STRIPE)) == "stripe"
    assert dependency_of(AutoReconnect("gone")) == Needed.MONGO
    assert dependency_of(ServerSelectionTimeoutError("refused")) == Needed.MONGO
    assert dependency_of(BusUnavailable("not connected")) == Needed.NATS
    # Nothing says what is down: every consumer pauses.
    assert dependency_of(DependencyUnavailable("down")) == Needed.UNKNOWN
    assert dependency_of(TimeoutError()) == Needed.UNKNOWN
    assert dependency_of(RuntimeError("bug")) is None  # the event's fault: counted, not held


def test_a_service_declares_what_its_handlers_need_besides_its_database() -> None:
    async def on_created(runtime: Any, event: Event[TicketCreated]) -> None:
        return None

    async def on_updated(runtime: Any, event: Event[TicketUpdated]) -> None:
        return None

    def handlers(needs: Needed) -> Handlers[Any]:
        return Handlers(
            handles(TicketCreated, on_created, needs={needs}), handles(TicketUpdated, on_updated)
        )

    spec: ServiceSpec[Any, Any] = ServiceSpec(
        name="svc", routers=[], handlers=handlers(Needed.STRIPE)
    )
    assert spec.handler_needs(Subject.TICKET_CREATED) == {Needed.MONGO, Needed.STRIPE}
    assert spec.handler_needs(Subject.TICKET_UPDATED) == {Needed.MONGO}
    redis_only: ServiceSpec[Any, Any] = ServiceSpec(
        name="svc", routers=[], handlers=handlers(Needed.REDIS), uses_mongo=False
    )
    assert redis_only.handler_needs(Subject.TICKET_CREATED) == {Needed.REDIS}
    assert redis_only.handler_needs(Subject.TICKET_UPDATED) == frozenset()
    # What a handler needs is declared with it (`handles(..., needs=...)`): there is no
    # declaring needs for a subject the service does not handle.
