"""One behaviour suite for both buses: the in-memory fake and a real nats-server.

Every test runs twice (`[memory]` and `[nats]`); the fake is only trusted because it passes
the same assertions as the real thing.
"""

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import pytest
from nats.js.api import StorageType

from ticketing_common.bus import (
    Bus,
    BusUnavailable,
    JetStreamBus,
    OperatorBus,
    PublishRefused,
    RetryLater,
    Unpublishable,
)
from ticketing_common.bus.jetstream import stream_config
from ticketing_common.bus.memory import InMemoryBroker, InMemoryBus
from ticketing_common.bus.streams import CONSUMERS, STREAMS, ContractMismatch, stream_for
from ticketing_common.events import Event, Subject, TicketCreated, encode, new_event
from ticketing_testing.events import order_created
from ticketing_testing.servers import ServerProcess
from ticketing_testing.waiting import eventually, started

BusFactory = Callable[..., OperatorBus]


def ticket(n: int = 1, version: int = 0) -> Event[TicketCreated]:
    return new_event(
        TicketCreated(id=f"t{n}", version=version, title="show", price=10.0, user_id="u")
    )


class Recorder:
    """A handler that records deliveries and fails as told."""

    def __init__(self, fail_times: int = 0, always_fail: bool = False) -> None:
        self.fail_times = fail_times
        self.always_fail = always_fail
        self.seen: list[Event[Any]] = []
        self.attempts: collections.Counter[str] = collections.Counter()

    async def __call__(self, event: Event[Any]) -> None:
        self.attempts[event.id] += 1
        if self.always_fail or self.attempts[event.id] <= self.fail_times:
            raise RuntimeError("boom")
        self.seen.append(event)


async def test_a_published_event_reaches_the_subscriber(make_bus: BusFactory) -> None:
    consumer, producer = make_bus("orders"), make_bus("tickets")
    rec = Recorder()
    consumer.subscribe(ticket().subject, rec)
    await started(consumer)
    await started(producer)
    event = ticket()
    await producer.publish(event)
    await eventually(lambda: rec.seen == [event])


async def test_a_failing_handler_gets_the_message_again(make_bus: BusFactory) -> None:
    bus = make_bus("orders", max_deliver=5)
    rec = Recorder(fail_times=2)
    bus.subscribe(ticket().subject, rec)
    await started(bus)
    event = ticket()
    await bus.publish(event)
    await eventually(lambda: len(rec.seen) == 1)
    assert rec.attempts[event.id] == 3
    assert await bus.dead_letters() == []


async def test_a_message_that_keeps_failing_is_dead_lettered_after_max_deliver(
    make_bus: BusFactory,
) -> None:
    bus = make_bus("orders", max_deliver=3)
    poison = Recorder(always_fail=True)
    bus.subscribe(ticket().subject, poison)
    await started(bus)
    bad = ticket(1)
    await bus.publish(bad)

    async def dead() -> bool:
        letters = await bus.dead_letters()
        return len(letters) == 1 and letters[0].deliveries == 3

    await eventually(dead, timeout=10)
    letter = (await bus.dead_letters())[0]
    assert letter.durable == "orders-ticket-created"
    assert b'"t1"' in letter.payload
    assert "boom" in letter.error
    assert poison.attempts[bad.id] == 3
    # The flow continues: later messages are delivered as usual.
    poison.always_fail = False
    good = ticket(2)
    await bus.publish(good)
    await eventually(lambda: [e.id for e in poison.seen] == [good.id])
    assert poison.attempts[bad.id] == 3  # never delivered again


async def test_bytes_that_are_not_an_event_are_dead_lettered(make_bus: BusFactory) -> None:
    bus = make_bus("orders", max_deliver=2)
    rec = Recorder()
    bus.subscribe(ticket().subject, rec)
    await started(bus)
    await bus.publish_raw("ticket.created", b"{not json", msg_id="poison-1")
    await bus.publish(ticket(7))

    async def dead() -> bool:
        return len(await bus.dead_letters()) == 1

    await eventually(dead, timeout=10)
    assert (await bus.dead_letters())[0].payload == b"{not json"
    await eventually(lambda: len(rec.seen) == 1)


async def test_retry_later_waits_for_the_earlier_event(make_bus: BusFactory) -> None:
    """The version rule: a newer version waits (nak) until the one before it has landed."""
    bus = make_bus("orders", max_deliver=20)
    applied: list[int] = []

    async def apply_in_order(event: Event[Any]) -> None:
        expected = applied[-1] + 1 if applied else 0
        if event.data.version > expected:
            raise RetryLater("earlier version still on its way")
        if event.data.version == expected:
            applied.append(event.data.version)

    bus.subscribe(ticket().subject, apply_in_order)
    await started(bus)
    for version in (2, 1, 0):
        await bus.publish(ticket(1, version))
    await eventually(lambda: applied == [0, 1, 2], timeout=10)


async def test_the_same_event_id_is_stored_once(make_bus: BusFactory) -> None:
    bus = make_bus("orders")
    rec = Recorder()
    bus.subscribe(ticket().subject, rec)
    await started(bus)
    event = ticket()
    await bus.publish(event)
    await bus.publish(event)
    await bus.publish(ticket(2))
    await eventually(lambda: len(rec.seen) == 2)
    assert [e.id for e in rec.seen].count(event.id) == 1


async def test_two_processes_of_one_service_share_the_work(make_bus: BusFactory) -> None:
    first, second, producer = make_bus("orders"), make_bus("orders"), make_bus("tickets")
    rec_a, rec_b = Recorder(), Recorder()
    first.subscribe(ticket().subject, rec_a)
    second.subscribe(ticket().subject, rec_b)
    for bus in (first, second, producer):
        await started(bus)
    events = [ticket(n) for n in range(30)]
    for event in events:
        await producer.publish(event)
    await eventually(lambda: len(rec_a.seen) + len(rec_b.seen) == 30, timeout=10)
    ids = [e.id for e in rec_a.seen + rec_b.seen]
    assert sorted(ids) == sorted(e.id for e in events)  # each once, none twice


async def test_a_durable_consumer_gets_what_was_published_while_it_was_away(
    make_bus: BusFactory,
) -> None:
    producer = make_bus("tickets")
    before = make_bus("orders")
    rec = Recorder()
    before.subscribe(ticket().subject, rec)
    await started(producer)
    await started(before)
    await producer.publish(ticket(1))
    await eventually(lambda: len(rec.seen) == 1)
    await before.close()
    await producer.publish(ticket(2))  # nobody of "orders" is listening now
    after = make_bus("orders")
    rec_after = Recorder()
    after.subscribe(ticket().subject, rec_after)
    await started(after)
    await eventually(lambda: [e.data.id for e in rec_after.seen] == ["t2"])


async def hang_on_a_ticket(
    bus: OperatorBus, producer: OperatorBus, name: str, release: asyncio.Event
) -> list[str]:
    """`bus` takes a ticket:created `producer` publishes and hangs on it until `release` is
    set. Returns, once it hangs, the list of the processes that handled it (`name` so far),
    which `start_helper` adds to."""
    handled_by: list[str] = []

    async def hangs(event: Event[Any]) -> None:
        handled_by.append(name)
        await release.wait()

    bus.subscribe(ticket().subject, hangs)
    await started(bus)
    await started(producer)
    await producer.publish(ticket())
    await eventually(lambda: handled_by == [name])
    return handled_by


async def start_helper(bus: OperatorBus, handled_by: list[str]) -> None:
    """Another process of the same service, whose handler adds "helper" to `handled_by`."""

    async def works(event: Event[Any]) -> None:
        handled_by.append("helper")

    bus.subscribe(ticket().subject, works)
    await started(bus)


async def test_the_message_of_a_process_that_died_is_redelivered_after_ack_wait(
    make_bus: BusFactory,
) -> None:
    dying_bus, helper_bus, producer = (
        make_bus("orders", ack_wait=1.0),
        make_bus("orders", ack_wait=1.0),
        make_bus("tickets"),
    )
    handled_by = await hang_on_a_ticket(dying_bus, producer, "dying", asyncio.Event())
    await dying_bus.close()  # killed mid-handler: no ack, and no more progress signals
    await start_helper(helper_bus, handled_by)
    # Not acked within ack_wait: JetStream hands it to the other subscriber.
    await eventually(lambda: handled_by == ["dying", "helper"], timeout=10)


async def test_a_hung_handler_lets_another_process_take_its_message(
    make_bus: BusFactory,
) -> None:
    """Progress is signalled while a handler runs, but not past max_handler_seconds: a handler
    stuck forever must not hold its event forever."""
    stuck_bus, helper_bus, producer = (
        make_bus("orders", ack_wait=1.0, max_handler_seconds=1.5),
        make_bus("orders", ack_wait=1.0),
        make_bus("tickets"),
    )
    release = asyncio.Event()
    handled_by = await hang_on_a_ticket(stuck_bus, producer, "stuck", release)
    await start_helper(helper_bus, handled_by)
    await eventually(lambda: "helper" in handled_by, timeout=10)
    release.set()


def test_the_fake_hands_a_message_out_again_to_another_waiting_process_first() -> None:
    """As the server serves its waiting pull requests in turn: two processes asking at the
    same period must not leave a redelivery with the process that had it, round after round
    (the hung-handler test above timed out in CI that way)."""
    broker = InMemoryBroker()
    first, second = InMemoryBus("orders", broker=broker), InMemoryBus("orders", broker=broker)
    consumer = broker.consumer("orders-ticket-created", ticket().subject.wire, ack_wait=60)
    broker.append(ticket().subject.wire, encode(ticket()), "one")
    taken = first._take(consumer)
    assert taken is not None
    assert second._take(consumer) is None  # in flight: not handed out again
    consumer.in_flight[taken.seq] = (0.0, 1)  # its ack deadline passes
    # The first process, asking first, is passed over for the second, which is waiting too ...
    assert first._take(consumer) is None
    again = second._take(consumer)
    assert again is not None
    assert again.deliveries == 2
    # ... but with nobody else waiting, a process gets its own message back.
    consumer.in_flight[again.seq] = (0.0, 2)
    consumer.asked_at.clear()
    assert second._take(consumer) is not None


@pytest.mark.connected
async def test_published_events_survive_a_server_restart(nats_server: ServerProcess) -> None:
    """Streams are on disk (flaw 6): what was published before a restart is delivered after.
    Real server only: the in-memory fake has no server to restart."""
    url = f"nats://{nats_server.url}"
    producer = await started(JetStreamBus(url, "tickets"))
    events = [ticket(n) for n in range(3)]
    for event in events:
        await producer.publish(event)
    await producer.close()
    nats_server.restart()
    consumer = JetStreamBus(url, "orders")
    rec = Recorder()
    consumer.subscribe(ticket().subject, rec)
    await started(consumer)
    try:
        await eventually(lambda: [e.id for e in rec.seen] == [e.id for e in events], timeout=10)
    finally:
        await consumer.close()


def test_the_retry_rules() -> None:
    """Poison is counted, RetryLater is bounded by time, and the server's own limit wins."""
    from ticketing_common.bus.policy import MAX_RETRY_DELAY, Outcome, RetryPolicy, Verdict, decide

    policy = RetryPolicy(max_deliver=10, retry_delay=0.5, horizon=3600)

    def verdict(outcome: Outcome, **facts: Any) -> Verdict:
        facts = {"delivered": 1, "failures": 0, "age": 0.0, **facts}
        return decide(outcome, error="x", policy=policy, **facts).verdict

    # Capped exponential backoff, without overflowing after thousands of offers.
    assert [policy.backoff(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 16, MAX_RETRY_DELAY]
    assert policy.backoff(100_000) == MAX_RETRY_DELAY
    first = decide(Outcome.RETRY_LATER, error="x", delivered=1, failures=0, age=0, policy=policy)
    assert (first.verdict, first.delay) == (Verdict.NAK, 0.5)
    # Poison: dead on the max_deliver-th failure, whatever the server's count says.
    assert verdict(Outcome.FAILED, failures=9, delivered=500) is Verdict.NAK
    assert verdict(Outcome.FAILED, failures=10, delivered=10) is Verdict.DEAD
    # RetryLater: never by count; only once both its age and its time in backoff pass the
    # horizon. An old event first seen now (a consumer back from a long outage) waits on.
    assert verdict(Outcome.RETRY_LATER, delivered=100, age=100.0) is Verdict.NAK
    assert verdict(Outcome.RETRY_LATER, delivered=2, age=10 * 3600.0) is Verdict.NAK
    assert verdict(Outcome.RETRY_LATER, delivered=150, age=3700.0) is Verdict.DEAD
    assert policy.waited(150) >= 3600 > policy.waited(100)
    # A server that will not deliver again: dead-letter now rather than lose it.
    assert verdict(Outcome.RETRY_LATER, delivered=3, server_max_deliver=3) is Verdict.DEAD
    assert verdict(Outcome.FAILED, failures=1, delivered=3, server_max_deliver=3) is Verdict.DEAD
    assert verdict(Outcome.FAILED, failures=1, delivered=3, server_max_deliver=-1) is Verdict.NAK


def test_the_settings_make_the_policy_and_its_poison_budget() -> None:
    """The policy a service runs with is its settings'; a poison event's budget is the backoff
    between its max_deliver failed deliveries."""
    from ticketing_common.bus.policy import RetryPolicy
    from ticketing_common.settings import ServiceSettings

    settings = ServiceSettings(
        environment="development",
        nats_max_deliver=9,
        nats_retry_delay_seconds=0.1,
        nats_retry_horizon_seconds=600,
    )
    policy = RetryPolicy.from_settings(settings)
    assert (policy.max_deliver, policy.retry_delay, policy.horizon) == (9, 0.1, 600)
    # 0.1 + 0.2 + ... + 12.8: the waits between 9 failed deliveries.
    assert policy.poison_budget == pytest.approx(25.5)


async def test_a_message_no_stream_would_store_is_refused_as_unpublishable(
    make_bus: BusFactory,
) -> None:
    """Not "the bus is down" (the outbox would retry it forever) but "never as it is"."""
    bus = await started(make_bus("tickets"))
    with pytest.raises(Unpublishable):
        await bus.publish_raw("nosuch.subject", b"{}", msg_id="x-1")
    await bus.publish_raw("ticket.created", b"{}", msg_id="x-2")  # the bus itself is fine


async def test_records_are_handled_at_once_and_each_records_events_in_order(
    make_bus: BusFactory,
) -> None:
    """Lanes: handlers of different records overlap (up to the concurrency), while one record's
    events run one at a time in the order they were published."""
    bus = make_bus("orders", concurrency=4)
    running: dict[str, int] = collections.Counter()
    overlap = 0
    order: dict[str, list[int]] = collections.defaultdict(list)
    gate = asyncio.Event()

    async def slow(event: Event[Any]) -> None:
        nonlocal overlap
        running[event.data.id] += 1
        assert running[event.data.id] == 1, "two handlers ran for one record at once"
        overlap = max(overlap, sum(running.values()))
        if overlap >= 4:
            gate.set()
        # Long enough that a sequential consumer could never overlap two records.
        await asyncio.wait_for(gate.wait(), timeout=0.5)
        order[event.data.id].append(event.data.version)
        running[event.data.id] -= 1

    bus.subscribe(ticket().subject, slow)
    await started(bus)
    for version in range(3):
        for n in range(1, 5):
            await bus.publish(ticket(n, version))
    await eventually(lambda: sum(map(len, order.values())) == 12, timeout=10)
    assert overlap == 4  # never more than the concurrency, and that many at once
    assert all(versions == [0, 1, 2] for versions in order.values()), order


def test_every_stream_is_kept_by_as_many_servers_as_the_settings_say() -> None:
    """NATS_STREAM_REPLICAS: 1 on one server, 3 on the production cluster."""
    for spec in STREAMS:
        assert stream_config(spec).num_replicas == 1
        config = stream_config(spec, replicas=3)
        assert (config.name, config.num_replicas) == (spec.name, 3)
        assert config.storage is StorageType.FILE
    assert JetStreamBus("nats://x", "tickets", stream_replicas=3).stream_replicas == 3


@pytest.mark.connected
async def test_a_trickle_of_messages_is_pulled_by_few_requests(nats_server: ServerProcess) -> None:
    """Pulls stand on the server and deliver messages as they come: one event at a time, each
    handled before the next is published, costs a pull request every few messages, not the
    two or more (a probe, then a waiting pull) nats-py's `fetch` sends for each."""
    import nats

    url = f"nats://{nats_server.url}"
    watcher = await nats.connect(url)
    requests: list[bytes] = []

    async def count(msg: Any) -> None:
        requests.append(msg.data)

    await watcher.subscribe("$JS.API.CONSUMER.MSG.NEXT.>", cb=count)
    producer = await started(JetStreamBus(url, "tickets"))
    consumer = JetStreamBus(url, "orders", concurrency=16)
    rec = Recorder()
    consumer.subscribe(ticket().subject, rec)
    await started(consumer)
    try:
        for n in range(20):
            await producer.publish(ticket(n))
            await eventually(lambda n=n: len(rec.seen) == n + 1, timeout=5)  # type: ignore[misc]
        await watcher.flush()
        assert len(requests) <= 8, f"{len(requests)} pull requests for 20 messages"
    finally:
        await consumer.close()
        await producer.close()
        await watcher.close()


async def publish_as_the_outbox_would(bus: Bus, event: Event[Any], *, timeout: float) -> None:
    """Publish, trying again while the bus is unavailable (not reconnected, or not declared
    again yet), as the outbox relay does with an event it keeps."""

    async def published() -> bool:
        try:
            await bus.publish(event)
        except BusUnavailable:
            return False
        return True

    await eventually(published, timeout=timeout)


async def one_event_through(
    nats_server: ServerProcess, **consumer_settings: Any
) -> tuple[JetStreamBus, Recorder, JetStreamBus]:
    """An orders consumer and a tickets producer on the server, one event delivered."""
    url = f"nats://{nats_server.url}"
    consumer = JetStreamBus(url, "orders", **consumer_settings)
    rec = Recorder()
    consumer.subscribe(ticket().subject, rec)
    await started(consumer)
    producer = await started(JetStreamBus(url, "tickets"))
    await producer.publish(ticket(1))
    await eventually(lambda: len(rec.seen) == 1, timeout=5)
    return consumer, rec, producer


async def a_second_event_through(
    consumer: JetStreamBus, rec: Recorder, producer: JetStreamBus, *, timeout: float
) -> None:
    """After `one_event_through` and an outage: once both buses are connected again, a second
    event, published as the outbox would, reaches the consumer."""
    await eventually(lambda: consumer._nc is not None and consumer._nc.is_connected)
    await eventually(lambda: producer._nc is not None and producer._nc.is_connected)
    await publish_as_the_outbox_would(producer, ticket(2), timeout=timeout)
    await eventually(lambda: len(rec.seen) == 2, timeout=timeout)


@pytest.mark.connected
async def test_a_consumer_asks_again_at_once_when_its_server_comes_back(
    nats_server: ServerProcess,
) -> None:
    """A restart takes the standing pulls with it: the consumer asks again when it reconnects,
    not only when their heartbeats have been missing long enough to give them up."""
    # Heartbeats so far apart that only asking again on reconnecting can get the event in time.
    consumer, rec, producer = await one_event_through(nats_server, pull_heartbeat=60)
    try:
        nats_server.restart()
        await producer.wait_connected(10)
        await a_second_event_through(consumer, rec, producer, timeout=5)
    finally:
        await consumer.close()
        await producer.close()


@pytest.mark.connected
async def test_a_consumer_whose_durable_is_gone_sets_it_up_again(
    nats_server: ServerProcess,
) -> None:
    """The server comes back with its store wiped: a pull for a durable that no longer exists is
    answered at once with a 503 (no responders), and the consumer must take that for a pull
    lost (set its durable up again), not ask again and again."""
    import shutil
    from pathlib import Path

    consumer, rec, producer = await one_event_through(nats_server)
    try:
        nats_server.stop()
        store = Path(nats_server.args[nats_server.args.index("-sd") + 1])
        shutil.rmtree(store)
        nats_server.start()
        # The producer re-declares the streams when it reconnects.
        await a_second_event_through(consumer, rec, producer, timeout=10)
    finally:
        await consumer.close()
        await producer.close()


# --- bounded streams: interest retention, max_bytes, discard new (issue 21) ---------------------


async def kept(make_bus: BusFactory, stream: str) -> int:
    """How many messages `stream` keeps, on the server or in the fake."""
    server: ServerProcess | None = make_bus.server  # type: ignore[attr-defined]
    if server is None:
        broker: InMemoryBroker = make_bus.broker  # type: ignore[attr-defined]
        return broker.kept(stream)
    import nats

    nc = await nats.connect(f"nats://{server.url}")
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.state.messages
    finally:
        await nc.close()


def refused_count(service: str, stream: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"service": service, "stream": stream, "reason": "stream_full"}
    return REGISTRY.get_sample_value("ticketing_bus_publish_refused_total", labels) or 0.0


async def test_a_full_stream_refuses_a_publish_until_its_consumer_catches_up(
    make_bus: BusFactory,
) -> None:
    """Discard new at max_bytes: with orders' ticket:created consumer down (its durable exists:
    the producer created the contract's), TICKETS fills and refuses the next publish with
    BusUnavailable (the outbox keeps it), counted; nothing kept is deleted, other streams still
    take events, and once orders consumes its backlog the stream takes messages again."""
    limits = {"TICKETS": 4096}
    producer = await started(make_bus("tickets", stream_max_bytes=limits))
    before = refused_count("tickets", "TICKETS")
    sent: list[Event[Any]] = []
    failure: BusUnavailable | None = None
    for n in range(200):
        event = ticket(n)
        try:
            await producer.publish(event)
        except BusUnavailable as exc:
            failure = exc
            break
        sent.append(event)
    assert isinstance(failure, PublishRefused)
    assert (failure.stream, failure.reason) == ("TICKETS", "stream_full")
    assert refused_count("tickets", "TICKETS") == before + 1
    assert 3 <= len(sent) < 200
    assert await kept(make_bus, "TICKETS") == len(sent)
    await producer.publish(order_created(order_id="o1"))  # ORDERS is not full

    orders = make_bus("orders", stream_max_bytes=limits)
    rec = Recorder()
    orders.subscribe(Subject.TICKET_CREATED, rec)
    await started(orders)
    await eventually(lambda: [e.id for e in rec.seen] == [e.id for e in sent], timeout=10)

    async def taken() -> bool:
        try:
            await producer.publish(ticket(500))
        except BusUnavailable:
            return False
        return True

    await eventually(taken, timeout=10)  # the acked messages are gone: room again
    await eventually(lambda: len(rec.seen) == len(sent) + 1)


async def test_a_message_is_kept_until_every_registered_durable_has_acked_it(
    make_bus: BusFactory,
) -> None:
    """Interest retention over the contract's durables: order:created is kept while one of its
    three registered consumers (tickets, expiration, payments) has not acked it, even one that
    has never consumed yet, and removed once all have; a message nobody consumes (user events)
    is not kept at all."""
    producer = await started(make_bus("orders"))
    event = order_created(order_id="o1")
    await producer.publish(event)
    await producer.publish_raw("user.created", b"{}", msg_id="u-1")
    assert await kept(make_bus, "USERS") == 0
    recorders: list[Recorder] = []
    for service in ("tickets", "expiration", "payments"):
        assert await kept(make_bus, "ORDERS") == 1  # someone has not acked it yet
        rec = Recorder()
        consumer = make_bus(service)
        consumer.subscribe(Subject.ORDER_CREATED, rec)
        await started(consumer)
        recorders.append(rec)
        await eventually(lambda rec=rec: [e.id for e in rec.seen] == [event.id])  # type: ignore[misc,arg-type]

    async def removed() -> bool:
        return await kept(make_bus, "ORDERS") == 0

    await eventually(removed, timeout=10)


async def test_a_service_subscribing_outside_its_registry_entry_refuses_to_start(
    make_bus: BusFactory,
) -> None:
    bus = make_bus("orders", contract=True)
    bus.subscribe(Subject.TICKET_CREATED, Recorder())  # and not its other three
    with pytest.raises(ContractMismatch, match="not subscribed"):
        await bus.start()
    extra = make_bus("tickets", contract=True)
    for subject in (*CONSUMERS["tickets"], Subject.EXPIRATION_COMPLETE):
        extra.subscribe(subject, Recorder())
    with pytest.raises(ContractMismatch, match="expiration:complete"):
        await extra.start()


async def test_a_service_deletes_its_own_durables_it_no_longer_consumes(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """orders-expiration-complete, left by the version of orders that consumed it, would keep
    every expiration:complete until EXPIRATION is full; another service's durable is not
    orders' to delete, nor are the contract's."""
    old = make_bus("orders")
    old.subscribe(Subject.EXPIRATION_COMPLETE, Recorder())
    stranger = make_bus("auth")
    stranger.subscribe(Subject.EXPIRATION_COMPLETE, Recorder())
    await started(old)
    await started(stranger)
    await old.close()
    await stranger.close()
    new = make_bus("orders", contract=True)
    for subject in CONSUMERS["orders"]:
        new.subscribe(subject, Recorder())
    await started(new)
    await eventually(lambda: any("no longer consumes" in r.message for r in caplog.records))
    durables = await durables_of(make_bus, "EXPIRATION")
    assert "orders-expiration-complete" not in durables
    assert {"auth-expiration-complete", "payments-expiration-complete"} <= durables


async def durables_of(make_bus: BusFactory, stream: str) -> set[str]:
    server: ServerProcess | None = make_bus.server  # type: ignore[attr-defined]
    if server is None:
        broker: InMemoryBroker = make_bus.broker  # type: ignore[attr-defined]
        return {name for name, c in broker.consumers.items() if stream_for(c.subject) == stream}
    import nats

    nc = await nats.connect(f"nats://{server.url}")
    try:
        return {c.name for c in await nc.jetstream().consumers_info(stream)}
    finally:
        await nc.close()


def test_the_streams_are_bounded_and_fit_the_store_with_room_to_spare() -> None:
    """Interest retention and discard new for the event streams, limits for the dead letters;
    the defaults, the settings' defaults, together within the 4 GiB store with a quarter left."""
    from nats.js.api import DiscardPolicy, RetentionPolicy

    from ticketing_common.bus.streams import DEFAULT_MAX_BYTES, STORE_BYTES, stream_specs
    from ticketing_common.settings import ServiceSettings

    configs = {spec.name: stream_config(spec) for spec in STREAMS}
    for name, config in configs.items():
        assert config.discard == DiscardPolicy.NEW
        assert config.max_bytes == DEFAULT_MAX_BYTES[name] > 0
        expected = RetentionPolicy.LIMITS if name == "DEADLETTER" else RetentionPolicy.INTEREST
        assert config.retention == expected, name
    assert sum(DEFAULT_MAX_BYTES.values()) <= STORE_BYTES * 3 // 4
    settings = ServiceSettings(environment="development")
    assert settings.nats_stream_max_bytes == dict(DEFAULT_MAX_BYTES)
    custom = ServiceSettings(environment="development", nats_max_bytes_orders="2MiB")
    assert {s.name: s.max_bytes for s in stream_specs(custom.nats_stream_max_bytes)}[
        "ORDERS"
    ] == 2 * 1024 * 1024


@pytest.mark.connected
async def test_nothing_is_published_after_a_reconnect_until_the_durables_exist_again(
    nats_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: the server comes back with its store wiped, and nats-py reports the
    connection up before the bus has declared the streams and durables again. A message
    published in that gap was stored with no interest (the consumers' durables not made yet),
    acknowledged, and dropped. Now the publish is refused until the declare is done (the outbox
    keeps the event), and what is published afterwards reaches the consumer."""
    import shutil
    from pathlib import Path

    consumer, rec, producer = await one_event_through(nats_server)
    declare, gate = producer._declare, asyncio.Event()

    async def slow_declare(js: Any) -> None:
        await gate.wait()  # the declare of a reconnect, held up (a slow cluster)
        await declare(js)

    monkeypatch.setattr(producer, "_declare", slow_declare)
    try:
        nats_server.stop()
        shutil.rmtree(Path(nats_server.args[nats_server.args.index("-sd") + 1]))
        nats_server.start()
        await eventually(lambda: producer._nc is not None and producer._nc.is_connected)
        # The consumer's own bus has set the streams up again; the producer's publish still
        # waits for its own declare (the durables of every registered consumer).
        with pytest.raises(BusUnavailable):
            await producer.publish(ticket(2))
        gate.set()

        await publish_as_the_outbox_would(producer, ticket(3), timeout=10)
        await eventually(lambda: len(rec.seen) == 2, timeout=10)
        assert [e.data.id for e in rec.seen] == [ticket(1).data.id, ticket(3).data.id]
    finally:
        await consumer.close()
        await producer.close()


@pytest.mark.connected
async def test_a_stale_durable_still_consumed_by_an_older_version_is_kept_until_idle(
    nats_server: ServerProcess, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by review: in a rolling upgrade the old orders pods still pull from
    orders-expiration-complete when a new pod starts. Deleted under them, it was made again by
    them at once, from the first message (every expiry replayed to the old code). It is left
    while in use (the same durable, never re-made), and deleted once the last old pod is gone."""
    import nats

    monkeypatch.setattr(JetStreamBus, "STALE_RECHECK_SECONDS", 0.2)
    url = f"nats://{nats_server.url}"
    nc = await nats.connect(url)
    js = nc.jetstream()

    async def created() -> object | None:
        try:
            return (await js.consumer_info("EXPIRATION", "orders-expiration-complete")).created
        except Exception:
            return None

    old = JetStreamBus(url, "orders")
    old.subscribe(Subject.EXPIRATION_COMPLETE, Recorder())
    new = JetStreamBus(url, "orders", contract=True)
    for subject in CONSUMERS["orders"]:
        new.subscribe(subject, Recorder())
    try:
        await started(old)
        before = await eventually(created)
        await started(new)
        await eventually(lambda: any("left for now" in r.message for r in caplog.records))
        assert await created() == before
        await old.close()

        async def gone() -> bool:
            return await created() is None

        await eventually(gone, timeout=10)
    finally:
        await old.close()
        await new.close()
        await nc.close()
