"""The intake supervisor's sweep of metrics directories left by supervisors that were killed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from services.intake.workers import METRICS_DIR_PREFIX, sweep_metrics_dirs


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_only_the_directories_of_dead_supervisors_go(tmp_path: Path) -> None:
    dead = tmp_path / f"{METRICS_DIR_PREFIX}{_dead_pid()}-x1y2"
    alive = tmp_path / f"{METRICS_DIR_PREFIX}{os.getpid()}-a3b4"
    unnamed = tmp_path / f"{METRICS_DIR_PREFIX}kq_7zz9"  # the form before the pid was in the name
    other = tmp_path / "something-else-1"
    for path in (dead, alive, unnamed, other):
        path.mkdir()
    (dead / "counter_123.db").write_bytes(b"\0" * 16)

    assert sweep_metrics_dirs(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (alive, unnamed, other))
