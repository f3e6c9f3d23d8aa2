"""The rollup invariant on random trees, branches and tally streams.

For every unit, period, metric and category: value == Σ children + unmapped, VN holds
every count, and the incremental `RollupIndex` agrees with the reference `rollup`
computed from the final state, whatever the order, duplicates and late registrations.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.reporting.domain.attribution import BranchRegistration, place_branch
from services.reporting.domain.index import RollupIndex, TallyChange
from services.reporting.domain.periods import Period, parse_period
from services.reporting.domain.rollup import UnitRollup, rollup
from shared.orgtree import TreeVersion

from .fakes import FakeCrossWalk, FakeTree, trees_and_crosswalk

pytestmark = pytest.mark.unit

DAYS = [
    date(2023, 7, 15),
    date(2024, 1, 1),
    date(2024, 2, 29),
    date(2024, 3, 31),
    date(2024, 6, 30),
    date(2024, 12, 31),
    date(2025, 6, 30),
    date(2025, 7, 1),
    date(2025, 9, 30),
    date(2025, 12, 31),
]
PERIODS = [
    "2024",
    "2025",
    "2024-Q1",
    "2025-Q3",
    "2024..2025",
    "2025-H1",
    "2024-02",
    "2024-02-29",
    "2024-06-30..2025-07-01",
    "2023..2025",
]
SERIES = [("admitted", "all"), ("sourced", "female"), ("confirmed", "all")]
Key = tuple[str, date, str, str]


@dataclass(frozen=True)
class Scenario:
    trees: dict[TreeVersion, FakeTree]
    crosswalk: FakeCrossWalk
    steps: list[BranchRegistration | TallyChange]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    trees, crosswalk = draw(trees_and_crosswalk())
    branches = [f"B{i}" for i in range(draw(st.integers(1, 6)))]
    steps: list[BranchRegistration | TallyChange] = []
    for branch in branches:
        for n in range(draw(st.integers(0, 2))):  # 0: never registered; 2: registered again, moved
            legacy = draw(st.sampled_from([*trees["legacy"].leaves(), None, "C88888"]))
            new = draw(st.sampled_from([*trees["2025"].leaves(), None, "C88888"]))
            steps.append(BranchRegistration(branch, legacy, new, name=f"{branch} name {n}"))
    key = st.tuples(
        st.sampled_from(branches),
        st.sampled_from(DAYS),
        st.sampled_from(["admitted", "sourced"]),
        st.sampled_from(["all", "female"]),
    )
    keys = draw(st.lists(key, unique=True, max_size=12))
    for branch, day, metric, category in keys:
        values = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
        changes = [TallyChange(branch, day, metric, category, v, n + 1) for n, v in enumerate(values)]
        steps += changes + draw(st.lists(st.sampled_from(changes), max_size=2))  # duplicates
    return Scenario(trees, crosswalk, draw(st.permutations(steps)))


def _run(scenario: Scenario) -> tuple[RollupIndex, int]:
    index = RollupIndex(scenario.trees, scenario.crosswalk)
    total_delta = 0
    for step in scenario.steps:
        if isinstance(step, BranchRegistration):
            index.register(step)
        else:
            total_delta += index.apply(step)
    return index, total_delta


def _final_state(scenario: Scenario) -> tuple[dict[Key, int], dict[str, BranchRegistration], set[str]]:
    latest: dict[Key, TallyChange] = {}
    registrations: dict[str, BranchRegistration] = {}
    seen: set[str] = set()
    for step in scenario.steps:
        seen.add(step.branch_id)
        if isinstance(step, BranchRegistration):
            registrations[step.branch_id] = step
            continue
        key = (step.branch_id, step.day, step.metric, step.category)
        if key not in latest or latest[key].version < step.version:
            latest[key] = step
    return {key: change.value for key, change in latest.items()}, registrations, seen


def _expected(scenario: Scenario, tree: TreeVersion, period: Period, metric: str, category: str):
    values, registrations, seen = _final_state(scenario)
    counts: dict[str, int] = defaultdict(int)
    active: set[str] = set()
    for (branch, day, m, c), value in values.items():
        if day in period:
            counts[branch] += value if (m, c) == (metric, category) else 0
            if value > 0:
                active.add(branch)
    placements = [
        place_branch(scenario.trees, tree, b, registrations.get(b), scenario.crosswalk) for b in seen
    ]
    names = {b: r.name for b, r in registrations.items()}
    return rollup(scenario.trees[tree], placements, counts, active, names), sum(counts.values())


def _check_invariant(report: UnitRollup) -> None:
    assert report.value == sum(child.value for child in report.children) + report.unmapped
    assert report.reporting.branches_with_events <= report.reporting.branches


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_index_agrees_with_the_reference_rollup_and_keeps_the_invariant(scenario: Scenario) -> None:
    index, total_delta = _run(scenario)
    values, _, _ = _final_state(scenario)
    assert total_delta == sum(values.values())
    for tree in ("legacy", "2025"):
        for text in PERIODS:
            period = parse_period(text)
            for metric, category in SERIES:
                table, total = _expected(scenario, tree, period, metric, category)
                assert index.report(tree, "VN", period, metric, category).value == total
                for unit in scenario.trees[tree].units():
                    report = index.report(tree, unit.id, period, metric, category)
                    _check_invariant(report)
                    assert report == table.unit(unit.id)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_month_documents_are_the_monthly_rollups_and_are_all_marked_dirty(scenario: Scenario) -> None:
    index, _ = _run(scenario)
    dirty = set(index.drain_dirty())
    months = sorted({day.isoformat()[:7] for day in DAYS})
    for tree in ("legacy", "2025"):
        for unit in scenario.trees[tree].units():
            for month in months:
                totals = index.month_totals(tree, unit.id, month)
                report = index.report(tree, unit.id, parse_period(month), "admitted", "all")
                assert totals.metrics.get("admitted", {}).get("all", 0) == report.value
                assert totals.unmapped.get("admitted", {}).get("all", 0) == report.unmapped
                if totals.metrics or totals.unmapped:
                    assert (tree, unit.id, month) in dirty
    assert index.drain_dirty() == []


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.data())
def test_the_reference_rollup_keeps_the_invariant_for_any_counts(
    scenario: Scenario, data: st.DataObject
) -> None:
    _, registrations, seen = _final_state(scenario)
    for tree in ("legacy", "2025"):
        placements = [
            place_branch(scenario.trees, tree, b, registrations.get(b), scenario.crosswalk) for b in seen
        ]
        counts = {b: data.draw(st.integers(0, 1000)) for b in seen}
        table = rollup(scenario.trees[tree], placements, counts)
        for unit in scenario.trees[tree].units():
            _check_invariant(table.unit(unit.id))
        assert table.unit("VN").value == sum(counts.values())
        assert table.unit("VN").reporting.branches == len(seen)
