from datetime import UTC, datetime

import pytest

from ticketing_common.bus.streams import ALL_SUBJECTS, stream_for
from ticketing_common.events import (
    EVENT_TYPES,
    EventDecodeError,
    ExpirationComplete,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    OrderTicketRef,
    PaymentCreated,
    PaymentWindowClosed,
    Subject,
    TicketCreated,
    TicketRef,
    TicketUpdated,
    UserCreated,
    UserUpdated,
    decode,
    encode,
    from_document,
    new_event,
    to_document,
)

SAMPLES = [
    UserCreated(id="u1", email="a@b.co"),
    UserUpdated(id="u1", email="a@b.co", version=1),
    TicketCreated(id="t1", version=0, title="concert", price=19.99, user_id="u1"),
    TicketUpdated(id="t1", version=1, title="concert", price=20, user_id="u1", order_id="o1"),
    OrderCreated(
        id="o1",
        version=0,
        status=OrderStatus.CREATED,
        user_id="u2",
        expires_at=datetime(2030, 1, 1, 12, 0, tzinfo=UTC),
        ticket=OrderTicketRef(id="t1", price=19.99),
    ),
    OrderCancelled(id="o1", version=1, ticket=TicketRef(id="t1")),
    OrderCompleted(id="o2", version=1, ticket=TicketRef(id="t2")),
    ExpirationComplete(order_id="o1"),
    PaymentCreated(id="p1", order_id="o1", stripe_id="pi_1"),
    PaymentWindowClosed(order_id="o1"),
]


def test_every_subject_has_a_contract_and_a_sample() -> None:
    assert set(EVENT_TYPES) == set(Subject)
    assert {s.subject for s in SAMPLES} == set(Subject)


@pytest.mark.parametrize("data", SAMPLES, ids=lambda d: d.subject.value)
def test_every_event_round_trips_through_bytes_and_documents(data: object) -> None:
    event = new_event(data)  # type: ignore[type-var]
    assert decode(encode(event)) == event
    assert from_document(to_document(event)) == event
    assert type(decode(encode(event)).data) is type(data)


def test_the_envelope_carries_id_time_and_schema_version_in_camel_case() -> None:
    event = new_event(SAMPLES[4])
    doc = to_document(event)
    assert set(doc) == {"id", "subject", "occurredAt", "schemaVersion", "data"}
    assert doc["schemaVersion"] == 1
    assert doc["subject"] == "order:created"
    assert doc["data"]["userId"] == "u2"
    assert doc["data"]["expiresAt"] == "2030-01-01T12:00:00Z"
    assert new_event(SAMPLES[0]).id != new_event(SAMPLES[0]).id


def test_wire_subjects_use_dots_and_every_one_has_a_stream() -> None:
    assert Subject.TICKET_CREATED.wire == "ticket.created"
    assert Subject.from_wire("expiration.complete") is Subject.EXPIRATION_COMPLETE
    assert Subject.ORDER_COMPLETED.wire == "order.completed"
    assert stream_for(Subject.ORDER_COMPLETED.wire) == "ORDERS"
    assert {stream_for(s) for s in ALL_SUBJECTS} == {
        "USERS",
        "TICKETS",
        "ORDERS",
        "EXPIRATION",
        "PAYMENTS",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"subject": "nope:nope", "data": {}}',
        b'{"subject": "ticket:created", "data": {"id": "t1"}}',
    ],
)
def test_garbage_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode(raw)
