"""docs/settings.md, written from the settings classes: every knob a deployer turns, one table.

    .venv/bin/python -m ticketing_deploy.settings_doc            # writes docs/settings.md
    .venv/bin/python -m ticketing_deploy.settings_doc --check    # exit 1 if it is stale

The processes are `settings_env.processes` (the expiration worker reads the service's class).
A field's audience is the class that declares it first (a subclass may change its default):
one of `Knobs` or `Tuning` (ticketing_common.settings). A knob's meaning is its docstring. The
OpenTelemetry SDK's own variables (`OTEL_VARIABLES`) are knobs of every service, though no field.

Rendering also checks what the table relies on, and raises ValueError when it does not hold:
every field has one audience, every knob says what it is, and a variable that several
processes read is one field (declared once, in common), not one per process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ByteSize
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from ticketing_common.settings import OTEL_VARIABLES, Knobs, MiB, ServiceSettings, Tuning
from ticketing_deploy.generated import write_or_check
from ticketing_deploy.manifests import ROOT
from ticketing_deploy.settings_env import env_names, processes

DOC = ROOT / "docs" / "settings.md"
GENERATOR = "python -m ticketing_deploy.settings_doc"

HEADER = f"""\
# Settings

<!-- Written by `{GENERATOR}` from the settings classes: change
those (a field's docstring is its meaning here), then run it. A test
(tools/deploy/tests/test_settings_doc.py) fails when this file is not what it writes. -->

Every setting is an environment variable, read once when a process starts (a cached
`get_settings()` in each service and the web client; nothing is read at import time). A value
that does not validate stops the process with the variable's name. Each service's settings
module declares its own in two classes, the knobs a deployer turns and the internal tuning;
what several processes read is declared once, in `ticketing_common.settings`. "expiration" is
the service and its worker (`python -m ticketing_expiration.worker`), which read the same.
"""

KNOBS_INTRO = """\
## What a deployment sets

Where things are, credentials and secrets, names, the business rules the SPEC names, the
streams' sizes. The secrets (JWT_KEY, CLIENT_CSRF_KEY, STRIPE_KEY, REDIS_URL's password) come
from Kubernetes Secrets (README, "Run on Kubernetes"); `make up` and the tests set their own.
"""

TUNING_INTRO = """\
## Internal tuning

How the code runs: concurrency, timeouts, backoffs, sweep periods. The defaults are safe; the
tests and `make bench` change some of them. What each one does is said beside its field, in
the class named.
"""


@dataclass(frozen=True)
class Setting:
    """One variable as the processes that read it declare it."""

    variable: str
    readers: tuple[str, ...]
    defaults: tuple[str, ...]  # one per reader
    meaning: str
    declared_in: str


def _introduced_by(settings: type[BaseSettings], field: str) -> type:
    """The class that declares `field` first."""
    for cls in reversed(settings.__mro__):
        if field in vars(cls).get("__annotations__", {}):
            return cls
    raise ValueError(f"{settings.__name__}.{field}: declared nowhere")


def _meaning(settings: type[BaseSettings], field: str) -> str:
    """The field's docstring, from the most derived class that gives one, on one line."""
    for cls in settings.__mro__:
        found: FieldInfo | None = getattr(cls, "model_fields", {}).get(field)
        if found is not None and found.description:
            return " ".join(found.description.split())
    return ""


def _shown(info: FieldInfo) -> str:
    """A field's default as the table shows it."""
    if info.is_required():
        return "required"
    value = info.default
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, ByteSize) and value % MiB == 0:
        return f"`{value // MiB}MiB`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _audience(settings: type[BaseSettings], field: str) -> type[BaseSettings]:
    origin = _introduced_by(settings, field)
    kinds = [kind for kind in (Knobs, Tuning) if issubclass(origin, kind)]
    if len(kinds) != 1:
        raise ValueError(f"{origin.__name__}.{field}: declare it in a Knobs or a Tuning class")
    return kinds[0]


Classes = Mapping[str, type[BaseSettings]]


def settings_classes() -> dict[str, type[BaseSettings]]:
    """Each process's settings class once, by the first process that reads it."""
    found: dict[str, type[BaseSettings]] = {}
    for name, process in processes().items():
        if process.settings not in found.values():
            found[name] = process.settings
    return found


def collect(audience: type[BaseSettings], classes: Classes) -> list[Setting]:
    """Every variable of one audience, with who reads it, sorted by name."""
    by_variable: dict[str, list[tuple[str, type[BaseSettings], str]]] = {}
    for reader, settings in classes.items():
        for variable, field in env_names(settings).items():
            if field is not None and _audience(settings, field) is audience:
                by_variable.setdefault(variable, []).append((reader, settings, field))
    rows = [_row(variable, declared) for variable, declared in by_variable.items()]
    if audience is Knobs:
        rows += _sdk_rows(classes)
    return sorted(rows, key=lambda row: row.variable)


def _row(variable: str, declared: list[tuple[str, type[BaseSettings], str]]) -> Setting:
    origins = {_introduced_by(settings, field) for _, settings, field in declared}
    if len(origins) > 1:
        names = sorted(f"{o.__module__}.{o.__qualname__}" for o in origins)
        raise ValueError(f"{variable}: one fact in {len(origins)} fields ({', '.join(names)})")
    (origin,) = origins
    _, settings, field = declared[0]
    meaning = _meaning(settings, field)
    if issubclass(origin, Knobs) and not meaning:
        raise ValueError(f"{origin.__name__}.{field}: a knob without a docstring")
    return Setting(
        variable=variable,
        readers=tuple(reader for reader, _, _ in declared),
        defaults=tuple(_shown(s.model_fields[f]) for _, s, f in declared),
        meaning=meaning,
        declared_in=f"{origin.__module__}.{origin.__qualname__}",
    )


def _services(classes: Classes) -> tuple[str, ...]:
    return tuple(name for name, cls in classes.items() if issubclass(cls, ServiceSettings))


def _sdk_rows(classes: Classes) -> list[Setting]:
    readers = _services(classes)
    return [
        Setting(
            variable=variable.name,
            readers=readers,
            defaults=(f"`{variable.default}`" if variable.default != "unset" else "unset",)
            * len(readers),
            meaning=f"The OpenTelemetry SDK's own (it reads it itself). {variable.meaning}",
            declared_in="ticketing_common.settings.OTEL_VARIABLES",
        )
        for variable in OTEL_VARIABLES
    ]


def _readers(readers: Sequence[str], classes: Classes) -> str:
    if tuple(readers) == tuple(classes):
        return "every process"
    if tuple(readers) == _services(classes):
        return "every service"
    return ", ".join(readers)


def _defaults(setting: Setting) -> str:
    """The default, and which readers have another; each reader's own when none is shared."""
    groups: dict[str, list[str]] = {}
    for reader, default in zip(setting.readers, setting.defaults, strict=True):
        groups.setdefault(default, []).append(reader)
    if len(groups) == 1:
        return setting.defaults[0]
    ranked = sorted(groups.items(), key=lambda item: -len(item[1]))
    if len(ranked[0][1]) == 1:
        return "; ".join(
            f"{r}: {d}" for r, d in zip(setting.readers, setting.defaults, strict=True)
        )
    others = ", ".join(f"{r}: {d}" for d, rs in ranked[1:] for r in rs)
    return f"{ranked[0][0]} ({others})"


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|").strip()


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render(classes: Classes | None = None) -> str:
    """docs/settings.md as the settings classes (by default every process's) describe it."""
    classes = settings_classes() if classes is None else classes
    knobs = _table(
        ("variable", "read by", "default", "what it is"),
        (
            (f"`{s.variable}`", _readers(s.readers, classes), _defaults(s), s.meaning)
            for s in collect(Knobs, classes)
        ),
    )
    tuning = _table(
        ("variable", "read by", "default", "declared in"),
        (
            (f"`{s.variable}`", _readers(s.readers, classes), _defaults(s), f"`{s.declared_in}`")
            for s in collect(Tuning, classes)
        ),
    )
    return f"{HEADER}\n{KNOBS_INTRO}\n{knobs}\n{TUNING_INTRO}\n{tuning}"


def main(argv: Sequence[str] | None = None) -> int:
    return write_or_check(
        argv,
        description=__doc__.split("\n\n")[0],
        default=DOC,
        render=render,
        regenerate=GENERATOR,
    )


if __name__ == "__main__":
    raise SystemExit(main())
