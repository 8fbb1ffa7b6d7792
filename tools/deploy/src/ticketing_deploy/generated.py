"""Files generated from the code and committed (the event contracts, docs/settings.md): the one
command line each generator has, which writes the file or, with --check, says it is stale."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["write_or_check"]


def write_or_check(
    argv: Sequence[str] | None,
    *,
    description: str,
    default: Path,
    render: Callable[[], str],
    regenerate: str,
) -> int:
    """Write `render()` to the file (`--out`, else `default`); with `--check`, exit 1 when the
    file is not what it would write, naming the command that `regenerate`s it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--out", type=Path, default=default, help=f"default: {default}")
    args = parser.parse_args(argv)
    text = render()
    if not args.check:
        args.out.write_text(text)
        return 0
    if (args.out.read_text() if args.out.exists() else "") != text:
        print(f"{args.out} is stale: run {regenerate}")
        return 1
    return 0
