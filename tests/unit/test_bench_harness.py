"""The benchmark harness's bookkeeping: runs per module, medians, verdicts (no service runs)."""

from __future__ import annotations

import importlib
import os

import pytest

from benchmarks import harness, intake, quota
from benchmarks.common import service_settings
from shared.consumer import SESSION_TIMEOUT_ENV
from shared.settings import Settings

pytestmark = pytest.mark.unit


def test_a_full_run_gives_every_module_its_repeats() -> None:
    for name in harness.MODULES:
        module = importlib.import_module(f"benchmarks.{name}")
        assert harness.runs_of(module, quick=False, repeats=3) == (3, None)


def test_a_quick_run_gives_fewer_runs_only_where_a_module_says_why() -> None:
    runs, why = harness.runs_of(quota, quick=True, repeats=3)
    assert runs == 1
    assert why is not None
    assert why.startswith("quick: 1 run(s) (a full run has 3): ")
    assert "group joins" in why
    assert harness.runs_of(intake, quick=True, repeats=3) == (3, None)


def test_summary_is_median_min_max_over_the_runs_that_have_the_figure() -> None:
    runs = [{"a": 3.0, "b": 1.0}, {"a": 1.0}, {"a": 2.0, "b": 5.0}]
    assert harness.summarise(runs) == {
        "a": {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3},
        "b": {"median": 3.0, "min": 1.0, "max": 5.0, "runs": 2},
    }


def test_verdicts_follow_the_goals_direction() -> None:
    assert harness.verdict("intake_events_per_s", 30_000) == ">= 30000: met"
    assert harness.verdict("intake_p99_ms", 20) == "< 20: NOT met"
    assert harness.verdict("intake_p50_ms", 1) == ""


@pytest.mark.parametrize("service", ["quota", "reporting"])
def test_benchmarks_shorten_their_own_services_sessions_not_the_environment(
    monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    monkeypatch.delenv(SESSION_TIMEOUT_ENV, raising=False)
    assert service_settings(service, "127.0.0.1:1", "sqlite+aiosqlite://").kafka_session_timeout_ms == 3000
    assert SESSION_TIMEOUT_ENV not in os.environ  # the end-to-end services keep their default
    assert Settings().kafka_session_timeout_ms == 10_000
    monkeypatch.setenv(SESSION_TIMEOUT_ENV, "1500")
    assert service_settings(service, "127.0.0.1:1", "sqlite+aiosqlite://").kafka_session_timeout_ms == 1500
