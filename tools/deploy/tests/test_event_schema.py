"""The committed event contracts (common/events.schema.json) are what events.py defines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from ticketing_common.events import (
    EVENT_TYPES,
    OrderCreated,
    OrderTicketRef,
    PaymentWindowClosed,
    TicketUpdated,
    encode,
    new_event,
)
from ticketing_deploy import event_schema

COMMITTED = event_schema.DEFAULT_PATH


def test_the_committed_file_is_current() -> None:
    # A change to an event must show in review: regenerate with `make contracts`.
    assert COMMITTED.read_text() == event_schema.render()


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "events.schema.json"
    stale.write_text(event_schema.render().replace('"order:created"', '"order:made"'))
    assert event_schema.main(["--out", str(stale), "--check"]) == 1
    assert event_schema.main(["--out", str(stale)]) == 0
    assert event_schema.main(["--out", str(stale), "--check"]) == 0


def test_every_subject_is_one_event_of_the_document() -> None:
    document = event_schema.document()
    Draft202012Validator.check_schema(document)
    subjects = {
        document["$defs"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["subject"]["const"]
        for ref in document["oneOf"]
    }
    assert subjects == {subject.value for subject in EVENT_TYPES}


@pytest.mark.parametrize(
    "data",
    [
        TicketUpdated(id="t1", version=2, title="Jazz", price=12.5, user_id="u1", order_id="o1"),
        OrderCreated(
            id="o1",
            version=0,
            status="created",
            user_id="u1",
            expires_at="2026-12-07T14:06:20.563Z",
            ticket=OrderTicketRef(id="t1", price=12.5),
        ),
        PaymentWindowClosed(order_id="o1"),
    ],
)
def test_what_the_services_publish_validates(data: object) -> None:
    validator = Draft202012Validator(json.loads(COMMITTED.read_text()))
    wire = json.loads(encode(new_event(data)))  # type: ignore[type-var]
    assert list(validator.iter_errors(wire)) == []
    del wire["data"]["id" if "id" in wire["data"] else "orderId"]
    assert list(validator.iter_errors(wire)) != []
