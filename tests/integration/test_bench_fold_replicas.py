"""Two reporting replicas folding at once end where one folder ends.

The benchmark's ``reporting_fold_2_replicas_per_s`` splits a year's tally changes between
two processes as the consumer group would (by partition) and lets them fold into one
PostgreSQL database at once; that figure is only worth something if the split loses and
repeats nothing and the concurrent folds, sharing the ``VN`` and province rows, sum
exactly what a single folder sums. So: the same small year folded both ways, every
count-bearing table compared row for row.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from benchmarks.reporting import changes, fold_replicas, load, registrations, replica_of
from services.reporting.fold import Folder
from services.reporting.placing import Placer
from shared.db import make_engine, migrate
from shared.orgtree import load_org_trees
from tests.conftest import TEST_DATABASE_URL, fresh_database_url

SIZE = (300, 3_000, 12)  # branches, events, days
BATCH = 250
COMPARED = {
    "reporting_tallies": "branch_id, series, day, value, version",
    "reporting_unit_months": "unit, series, month, part, value",
    "reporting_unit_days": "unit, series, day, part, value",
    "reporting_activity": "*",
    "reporting_unit_branches": "tree, unit_id, n",
}


@pytest.mark.unit
def test_the_split_gives_every_branch_to_exactly_one_replica() -> None:
    branches = [b.branch_id for b in registrations(SIZE[0])]
    shares = [[b for b in branches if replica_of(b, 2) == i] for i in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(branches)
    assert all(len(share) > SIZE[0] // 4 for share in shares)  # both replicas have work


@pytest.mark.integration
@pytest.mark.skipif(TEST_DATABASE_URL is None, reason="PostgreSQL only: SQLite has one writer")
async def test_two_replicas_fold_exactly_what_one_folder_folds(tmp_path: Path) -> None:
    one, two = await fresh_database_url(tmp_path, "one"), await fresh_database_url(tmp_path, "two")
    engine = make_engine(one)
    try:
        await migrate(engine, "reporting")
        alone = await load(engine, Folder(Placer(load_org_trees())), SIZE, BATCH)
    finally:
        await engine.dispose()
    together = await asyncio.to_thread(fold_replicas, two, SIZE, 2, BATCH)

    expected = sum(len(chunk) for chunk in changes(registrations(SIZE[0]), *SIZE[1:], BATCH))
    assert alone["reporting_changes_loaded"] == expected
    assert together["reporting_fold_2_replicas_per_s"] > 0
    single, replicated = await _contents(one), await _contents(two)
    for table in COMPARED:
        assert single[table], f"{table} is empty: nothing was compared"
        assert replicated[table] == single[table], table


async def _contents(url: str) -> dict[str, list[tuple[object, ...]]]:
    """The compared tables' rows, sorted, read through one connection."""
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return {
                table: sorted(
                    tuple(row) for row in await connection.execute(text(f"SELECT {columns} FROM {table}"))
                )
                for table, columns in COMPARED.items()
            }
    finally:
        await engine.dispose()
