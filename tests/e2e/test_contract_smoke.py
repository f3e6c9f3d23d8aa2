"""The contract's own smoke check (../shared/tools/contract_smoke.py) passes against `ketnap up`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e

SMOKE = Path(__file__).resolve().parents[3] / "shared" / "tools" / "contract_smoke.py"


def test_contract_smoke_passes_twice(system: RunningSystem) -> None:
    if not SMOKE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SMOKE} is missing on CI")
        pytest.skip(f"{SMOKE} not beside the repository")
    args = [
        sys.executable,
        str(SMOKE),
        "--token",
        system.token,
        "--intake",
        system.urls["intake"],
        "--quota",
        system.urls["quota"],
        "--reporting",
        system.urls["reporting"],
    ]
    for attempt in (1, 2):  # the smoke is idempotent: a second run must pass too
        done = subprocess.run(args, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"run {attempt}:\n{done.stdout}\n{done.stderr}"
        assert "all checks pass" in done.stdout
