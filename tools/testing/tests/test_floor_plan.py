"""The house's size rules (issue 22): no source file over 500 lines, no function over 60.

Declarative tables are constants, not functions, so they never count against the second rule;
tests are not sources. A room that grows past these is split by concept, not squeezed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ("common/src", "services/*/src", "client/src", "tools/*/src")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60


def sources() -> Iterator[Path]:
    for pattern in SOURCES:
        for base in ROOT.glob(pattern):
            yield from sorted(base.rglob("*.py"))


def too_long(path: Path) -> Iterator[str]:
    text = path.read_text()
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    if (lines := len(text.splitlines())) > MAX_FILE_LINES:
        yield f"{where}: {lines} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield f"{where}:{node.lineno} {node.name}: {length} lines"


def test_the_sources_are_found() -> None:
    found = {path.relative_to(ROOT).parts[0] for path in sources()}
    assert found == {"common", "services", "client", "tools"}


def test_no_room_is_too_big() -> None:
    assert [problem for path in sources() for problem in too_long(path)] == []


def test_a_long_function_is_caught(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "probe.py"
    path.write_text(f"def long():\n{body}\n")
    assert list(too_long(path)) == ["probe.py:1 long: 61 lines"]
