"""Counting applied/skipped changes as if folded one by one; rollup document content and digests."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from services.reporting.bulk import Upsert
from services.reporting.feed import Content, RollupPublisher, _put, month_text
from services.reporting.fold import TALLIES, Change, FoldOutcome, _count, _latest_per_key
from services.reporting.placing import Placer
from services.reporting.series import NAMES, SERIES, series_of
from services.reporting.tables import outbox
from shared.orgtree import load_org_trees

pytestmark = pytest.mark.unit


@given(st.integers(min_value=0, max_value=5), st.lists(st.integers(min_value=1, max_value=8), max_size=12))
def test_counts_match_folding_one_change_at_a_time(stored: int, versions: list[int]) -> None:
    outcome = FoldOutcome()
    _count(versions, stored, outcome)
    highest, applied, stale, repeated = stored, 0, 0, 0
    for version in versions:
        if version > highest:
            applied, highest = applied + 1, version
        elif version == highest:
            repeated += 1
        else:
            stale += 1
    assert (outcome.applied, outcome.skipped["stale"], outcome.skipped["repeated"]) == (
        applied,
        stale,
        repeated,
    )


def test_the_batch_keeps_the_highest_version_per_key_and_every_arrival() -> None:
    changes = [
        Change("B", 1, 301, 1, 1),
        Change("B", 1, 301, 3, 3),
        Change("B", 1, 301, 2, 2),
        Change("B", 2, 301, 1, 1),
    ]
    latest, arrivals = _latest_per_key(changes)
    assert latest[("B", 301, 1)].version == 3
    assert arrivals[("B", 301, 1)] == [1, 3, 2]
    assert len(latest) == 2


def test_series_numbers_are_stable_and_readable() -> None:
    assert series_of("sourced", "all") == 0
    assert series_of("admitted", "female") == 301
    assert series_of("admitted", "male") is None
    assert len(SERIES) == len(NAMES)


def test_documents_hold_non_zero_figures_and_their_digest_ignores_order() -> None:
    first, second = Content({}, {}), Content({}, {})
    for content, order in ((first, (300, 301, 0)), (second, (0, 301, 300))):
        for series in order:
            _put(content, series, False, 2)
        _put(content, 301, True, 1)
        _put(content, 302, False, 0)
    assert first.metrics == {"admitted": {"all": 2, "female": 2}, "sourced": {"all": 2}}
    assert first.unmapped == {"admitted": {"female": 1}}
    assert first.digest() == second.digest()
    _put(second, 0, False, 1)
    assert first.digest() != second.digest()
    assert month_text(2024 * 12 + 4) == "2024-05"


def test_statements_for_both_databases() -> None:
    assert TALLIES.sqlite_sql().startswith("INSERT INTO reporting_tallies AS t (branch_id, series, day")
    assert "(x->>1)::int2 AS series" in TALLIES.postgres_sql()
    assert "jsonb_array_elements($1::jsonb)" in TALLIES.postgres_sql()
    nothing = Upsert("t", ("a", "b"), ("text", "int4"), ("a",), None)
    assert nothing.sqlite_sql().endswith("ON CONFLICT (a) DO NOTHING")


@pytest.mark.parametrize("folding", ["batches", "one long batch", "none"])
async def test_the_publisher_rests_while_batches_are_folded_and_no_longer(folding: str) -> None:
    """Its rest after a long round lasts while the consumer folds, batch after batch or one
    batch longer than a period, and ends at the first coalescing period in which no batch
    began, ended or was in flight (the periods it waited are counted).

    Bounds that a loaded machine cannot break: a period never ends before its 0.02 s, so
    0.2 s hold at most 11; a slow period only makes fewer of them."""
    calls = [0]

    def progress() -> tuple[int, int]:  # asked at each period's start and end
        calls[0] += 1
        if folding == "batches":
            return (calls[0], calls[0])
        return (1, 0) if folding == "one long batch" else (3, 3)

    # no table: the backlog reads between periods fail and are skipped, as with the database down
    engine = create_async_engine("sqlite+aiosqlite://")
    publisher = RollupPublisher(engine, Placer(load_org_trees()), outbox, coalesce_s=0.02, progress=progress)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await publisher._rest(0.2)
    rested, periods = loop.time() - started, calls[0] // 2
    await engine.dispose()
    if folding != "none":  # folds went on throughout: the whole pause, period after period
        assert rested >= 0.2
        assert 2 <= periods <= 12
    else:  # the first period folded nothing: over there
        assert periods == 1
