"""The event contracts as one JSON Schema document, generated from `ticketing_common.events`.

`common/events.schema.json` is this module's output, committed beside the code, so that a change
to an event (a field added, renamed, made optional, a subject added) shows in review as a change to
that file, and a consumer in another language can validate what it reads. A test fails when the
committed file is not what this module writes: regenerate it with `make contracts`.

Each event is its envelope (`id`, `subject`, `occurredAt`, `schemaVersion`) around its typed
`data`, exactly as `ticketing_common.events.encode` puts it on the wire; `subject` is a constant
per event, so the document's `oneOf` picks one event by its subject.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ticketing_common.events import EVENT_TYPES, SCHEMA_VERSION, Event, Subject
from ticketing_deploy.generated import write_or_check

__all__ = ["DEFAULT_PATH", "document", "main", "render"]

# The repository root: the file is where it is, whatever the working directory.
DEFAULT_PATH = Path(__file__).resolve().parents[4] / "common" / "events.schema.json"
_ID = "https://ticketing.dev/schemas/events.schema.json"


def _title(subject: Subject) -> str:
    return EVENT_TYPES[subject].__name__ + "Event"


def document() -> dict[str, Any]:
    """Every event of `EVENT_TYPES` as a JSON Schema (draft 2020-12), the wire form of each."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (Event[model], "serialization")  # type: ignore[valid-type]  # runtime-chosen model
        for model in EVENT_TYPES.values()
    ]
    keys, schema = models_json_schema(models, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema["$defs"]
    events: dict[str, Any] = {}
    for (model, _mode), subject in zip(models, EVENT_TYPES, strict=True):
        ref = keys[(model, "serialization")]["$ref"].removeprefix("#/$defs/")
        envelope = dict(defs.pop(ref))
        envelope["title"] = _title(subject)
        envelope["properties"] = {
            **envelope["properties"],
            "subject": {"const": subject.value, "title": "Subject"},
        }
        events[_title(subject)] = envelope
    # The subject enum is replaced by each event's constant.
    defs.pop("Subject", None)
    # `encode` writes every field, defaults and nulls included: on the wire each one is there.
    for schema_of in (*events.values(), *defs.values()):
        if "properties" in schema_of:
            schema_of["required"] = list(schema_of["properties"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _ID,
        "title": "Ticketing integration events",
        "description": (
            "Generated from common/src/ticketing_common/events.py by `make contracts`; do not "
            f"edit. Schema version {SCHEMA_VERSION}. On NATS the subject's colon is a dot "
            "(ticket:created is published on ticket.created)."
        ),
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in events],
        "$defs": {**events, **dict(sorted(defs.items()))},
    }


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(
        argv,
        description=__doc__.splitlines()[0],
        default=DEFAULT_PATH,
        render=render,
        regenerate="make contracts",
    )


if __name__ == "__main__":
    raise SystemExit(main())
