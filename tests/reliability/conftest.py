"""Fixtures of the reliability campaign: a cluster per scenario, and the table of figures.

Every scenario records one :class:`~tests.reliability.harness.Figures` line in the
session's book *before* it asserts, so a failing scenario still reports its figures.
At the end of the session the table is printed; with ``KETNAP_RELIABILITY_FULL=1``
it is also written to ``tests/reliability/results/latest.md`` (copied into
docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DATABASE_URL, fresh_database_url
from tests.reliability.harness import FULL, SERVICES, Cluster, ClusterSpec, Figures
from tests.reliability.model import every_token

FUZZ_PROVINCE = "P96"  # Cà Mau, in both trees: fuzzed writes may land there and nowhere else
FUZZ_WRITER = "rel-fuzz-writer-token-0123456789abcdef"
GROUPS = ("read_auth_cluster", "shared_cluster")  # scenarios on a shared cluster run after the others

RESULTS = Path(__file__).parent / "results" / "latest.md"
RESULTS_JSON = RESULTS.with_suffix(".json")  # every scenario's latest full-size figures, merged across runs
BOOK: list[Figures] = []
OpenCluster = Callable[..., AbstractAsyncContextManager[Cluster]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Scenarios with clusters of their own first, then those sharing one, grouped: a shared cluster
    lives until the session ends, so this keeps at most two of them idle beside a running scenario."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if here in item.path.parents]

    def rank(item: pytest.Item) -> tuple[int, str]:
        names = getattr(item, "fixturenames", ())
        group = next((n for n, g in enumerate(reversed(GROUPS), 1) if g in names), 0)
        return group, item.nodeid

    for slot, item in zip(slots, sorted((items[i] for i in slots), key=rank), strict=True):
        items[slot] = item


@pytest.fixture(scope="session")
def book() -> list[Figures]:
    return BOOK


async def fresh_databases(tmp_path: Path, name: str) -> dict[str, str]:
    """One fresh database per service (PostgreSQL when configured, else SQLite files)."""
    return {s: await fresh_database_url(tmp_path, f"{name}-{s}") for s in SERVICES}


@pytest.fixture
def open_cluster(tmp_path: Path) -> OpenCluster:
    """``async with open_cluster(spec) as cluster``: started, ready, stopped and its processes gone after."""

    @asynccontextmanager
    async def opened(
        spec: ClusterSpec, *, name: str = "cluster", database_urls: Mapping[str, str] | None = None
    ) -> AsyncIterator[Cluster]:
        urls = database_urls or await fresh_databases(tmp_path, name)
        cluster = Cluster(tmp_path / name, spec, urls)
        try:
            await cluster.start()
            yield cluster
        finally:
            await cluster.stop()

    return opened


@pytest.fixture(scope="session")
async def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """One cluster for the scenarios that inject no process fault (duplicates, poison, order, isolation).

    Each of them works in provinces of its own (disjoint sets of ``UNMERGED``), so no
    province rollup mixes two scenarios' counts; every province of both trees has a token.
    """
    tmp = tmp_path_factory.mktemp("shared")
    cluster = Cluster(tmp / "cluster", ClusterSpec(every_token()), await fresh_databases(tmp, "shared"))
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture(scope="session")
async def read_auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """A cluster with reads closed (``KETNAP_READ_AUTH=true``, as in production): read access and fuzzing."""
    tmp = tmp_path_factory.mktemp("readauth")
    spec = ClusterSpec({**every_token(), FUZZ_WRITER: [FUZZ_PROVINCE]}, read_auth=True)
    cluster = Cluster(tmp / "cluster", spec, await fresh_databases(tmp, "readauth"))
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "> 30" if value == float("inf") else f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


COLUMNS = (
    ("scenario", "scenario"),
    ("sent", "sent"),
    ("accepted", "accepted"),
    ("rejected", "rejected"),
    ("faults", "faults injected"),
    ("lost", "lost"),
    ("double_counted", "double-counted"),
    ("dead_lettered", "dead-lettered"),
    ("max_lag", "max lag"),
    ("p99_freshness_s", "p99 freshness (s)"),
    ("seconds", "time (s)"),
    ("passed", "result"),
)


def table(figures: list[Figures]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = []
    for f in sorted(figures, key=lambda f: f.scenario):
        cells = [_cell(getattr(f, attr)) for attr, _ in COLUMNS]
        cells[-1] = "pass" if f.passed else "FAIL"
        rows.append("| " + " | ".join(cells) + " |")
    notes = [f"- **{f.scenario}**: {f.notes}" for f in sorted(figures, key=lambda f: f.scenario) if f.notes]
    return "\n".join([head, rule, *rows, "", *notes])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not BOOK:
        return
    mode = "full" if FULL else "reduced"
    terminalreporter.section(f"reliability figures ({mode} sizes)")
    terminalreporter.write_line(table(BOOK))
    if FULL:
        merged = write_results(BOOK)
        terminalreporter.write_line(f"written to {RESULTS} ({len(merged)} scenarios)")


def write_results(figures: list[Figures]) -> list[Figures]:
    """Merge this run's full-size figures into the latest ones (by scenario) and write both files."""
    database = "PostgreSQL" if TEST_DATABASE_URL else "SQLite"
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {database}, {os.cpu_count()} CPUs"
    known = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    for f in figures:
        known[f.scenario] = {**asdict(f), "run": stamp}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(known, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    merged = [Figures(**{k: v for k, v in row.items() if k != "run"}) for row in known.values()]
    runs = sorted({f"- {row['scenario']}: {row['run']}" for row in known.values()})
    header = (
        f"Full sizes (`make test-reliability`) on {platform.node()} ({platform.machine()}, "
        f"Python {platform.python_version()}). Each scenario's latest run:\n\n" + "\n".join(runs) + "\n\n"
    )
    RESULTS.write_text(header + table(merged) + "\n")
    return merged
