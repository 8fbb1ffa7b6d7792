"""docs/settings.md is what the settings classes say, and the rules its one table relies on
hold: every field has one audience, every knob says what it is, one variable is one field."""

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from ticketing_common.settings import Knobs, ServiceSettings, Tuning
from ticketing_deploy import settings_doc


def test_docs_settings_md_is_what_the_generator_writes() -> None:
    assert settings_doc.DOC.read_text() == settings_doc.render(), (
        f"docs/settings.md is stale: run {settings_doc.GENERATOR}"
    )


def test_check_says_whether_the_file_is_stale(tmp_path: Path) -> None:
    out = tmp_path / "settings.md"
    assert settings_doc.main(["--check", "--out", str(out)]) == 1
    assert settings_doc.main(["--out", str(out)]) == 0
    assert settings_doc.main(["--check", "--out", str(out)]) == 0


def test_the_deployer_s_table_holds_no_tuning_and_the_tuning_no_knob() -> None:
    classes = settings_doc.settings_classes()
    knobs = {s.variable for s in settings_doc.collect(Knobs, classes)}
    tuning = {s.variable for s in settings_doc.collect(Tuning, classes)}
    assert knobs.isdisjoint(tuning)
    assert {"ORDER_EXPIRATION_SECONDS", "MAX_OPEN_ORDERS_PER_USER", "EXPIRY_GRACE_SECONDS"} <= knobs
    assert {"STRIPE_KEY", "JWT_KEY", "NATS_MAX_BYTES_ORDERS", "OTEL_SDK_DISABLED"} <= knobs
    assert {"NATS_CONCURRENCY", "HTTP_CONCURRENCY", "OUTBOX_SWEEP_SECONDS"} <= tuning


def test_the_expiry_grace_is_one_field_that_orders_and_expiration_read() -> None:
    (grace,) = [
        s
        for s in settings_doc.collect(Knobs, settings_doc.settings_classes())
        if s.variable == "EXPIRY_GRACE_SECONDS"
    ]
    assert grace.readers == ("orders", "expiration")
    assert grace.declared_in == "ticketing_common.settings.ExpiryGraceKnobs"


class _OneKnobs(Knobs):
    shared_url: str = "x"
    """Where it is."""


class _OtherKnobs(Knobs):
    shared_url: str = "x"
    """Where it is, said again."""


class _One(_OneKnobs, ServiceSettings):
    pass


class _Other(_OtherKnobs, ServiceSettings):
    pass


class _Unsorted(ServiceSettings):
    stray: int = 1


class _UnsaidKnobs(Knobs):
    silent_url: str = "x"


class _Silent(_UnsaidKnobs, ServiceSettings):
    pass


@pytest.mark.parametrize(
    ("classes", "problem"),
    [
        ({"one": _One, "other": _Other}, "SHARED_URL: one fact in 2 fields"),
        ({"one": _Unsorted}, "_Unsorted.stray: declare it in a Knobs or a Tuning class"),
        ({"one": _Silent}, "_UnsaidKnobs.silent_url: a knob without a docstring"),
    ],
)
def test_the_generator_refuses_what_the_table_could_not_say(
    classes: dict[str, type[BaseSettings]], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        settings_doc.render(classes)
