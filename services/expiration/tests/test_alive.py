"""The worker's liveness file and the probe command that reads it."""

import os
import time
from pathlib import Path

from ticketing_expiration import alive


def test_a_file_touched_just_now_is_alive_and_an_old_or_missing_one_is_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "worker.alive"
    assert alive.main([str(path), "30"]) == 1  # never touched
    alive.touch(str(path))
    assert alive.fresh(str(path), 30)
    assert alive.main([str(path), "30"]) == 0
    old = time.time() - 31
    os.utime(path, (old, old))
    assert not alive.fresh(str(path), 30)
    assert alive.main([str(path), "30"]) == 1


def test_no_file_configured_touches_nothing(tmp_path: Path) -> None:
    alive.touch("")
    alive.touch(str(tmp_path / "no" / "such" / "folder" / "file"))  # no error either
    assert list(tmp_path.iterdir()) == []
