"""A tiny `ketnap demo` end to end: the feed goes in over HTTP, the summary comes out consistent.

0.2% of the communes (20, spread over the country), 2024-2025 (across the
1 July 2025 reform), on free ports; `--no-wait` stops everything after the summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.embedded_broker import free_port

pytestmark = pytest.mark.e2e


def run_demo(data_dir: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    ports = {name: free_port() for name in ("kafka", "intake", "quota", "reporting")}
    args = [sys.executable, "-m", "ketnap", "demo", "--scale", "0.002", "--years", "2024-2025", "--no-wait"]
    args += ["--data-dir", str(data_dir), "--drain-timeout", "40"]
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=170, env={**os.environ, "COLUMNS": "200"}
    )
    summary_file = data_dir / "demo-summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return done, summary


def test_a_tiny_demo_feeds_the_system_and_the_nation_adds_up(tmp_path: Path) -> None:
    done, summary = run_demo(tmp_path / "demo")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ketnap demo: summary" in done.stdout
    assert summary["accepted"] > 2000
    assert summary["rejected"]  # every kind of invalid event the intake turns away
    assert set(summary["rejected"]) >= {"invalid_schema", "unknown_type", "unknown_branch", "future_time"}
    assert not summary["surprises"], summary["surprises"]  # each answer is the one the generator expected
    assert summary["drained"]
    checks = summary["checks"]
    assert len(checks) == 2, summary["notes"]
    for check in checks:  # VN = its provinces + unmapped: over 2024..2025, and for 2025 in the 2025 tree
        assert check["national"] == check["provinces"] + check["unmapped"], check
        assert check["national"] > 0
    years = {row["year"]: row for row in summary["national"]}
    assert set(years) == {2024, 2025}
    for row in years.values():
        assert row["reported"] == row["generated"], row  # what was fed is what is reported
        assert row["resolution"] is not None
    assert summary["ahead"]
