"""The smaller promises of the index, the reference rollup and the tree helpers."""

from __future__ import annotations

from datetime import date

import pytest

from services.reporting.domain.attribution import BranchRegistration, Placement
from services.reporting.domain.index import RollupIndex, TallyChange
from services.reporting.domain.orgview import chain, lowest_common_ancestor
from services.reporting.domain.periods import parse_period
from services.reporting.domain.rollup import UnknownUnitError, rollup

from .fakes import legacy_tree, tree_2025

pytestmark = pytest.mark.unit

TREES = {"legacy": legacy_tree([[2, 1]]), "2025": tree_2025([3])}


def _index() -> RollupIndex:
    index = RollupIndex(TREES)
    index.register(BranchRegistration("B1", "C00001", "C00003", name="Chi bộ 1"))
    return index


@pytest.mark.parametrize(("value", "version"), [(-1, 1), (1, 0), (2**32, 1)])
def test_a_tally_change_needs_a_count_and_a_version(value: int, version: int) -> None:
    with pytest.raises(ValueError, match="tally value"):
        TallyChange("B1", date(2024, 1, 1), "admitted", "all", value, version)


def test_apply_many_counts_the_changes_that_moved_a_count() -> None:
    index = _index()
    day = date(2024, 3, 8)
    changes = [
        TallyChange("B1", day, "admitted", "all", value, version)
        for value, version in [(1, 1), (1, 1), (3, 2), (3, 3)]
    ]
    assert index.apply_many(changes) == 2
    assert index.value("legacy", "P01", parse_period("2024-03"), "admitted", "all") == 3
    assert index.value("2025", "C00003", parse_period("2024"), "admitted", "all") == 3
    assert index.value("legacy", "P01", parse_period("2024"), "sourced", "all") == 0
    assert index.value("legacy", "C00002", parse_period("2024"), "admitted", "all") == 0


def test_placement_registration_and_membership_lookups() -> None:
    index = _index()
    assert index.placement("legacy", "B1") == Placement("B1", "legacy", ("C00001", "D001", "P01", "VN"), True)
    assert index.placement("legacy", "B9") is None
    assert index.registration("B1") == BranchRegistration("B1", "C00001", "C00003", name="Chi bộ 1")
    assert index.registration("B9") is None
    assert index.branches_under("2025", "P01") == {"B1"}
    assert index.branches_under("2025", "C00001") == frozenset()


def test_last_day_with_looks_only_up_to_the_given_day() -> None:
    index = _index()
    for day in (date(2021, 5, 1), date(2023, 2, 1)):
        index.apply(TallyChange("B1", day, "admitted", "all", 1, 1))
    index.apply(TallyChange("B1", date(2022, 1, 1), "admitted", "all", 0, 1))
    assert index.last_day_with("B1", "admitted", "all", date(2022, 12, 31)) == date(2021, 5, 1)
    assert index.last_day_with("B1", "admitted", "all", date(2025, 12, 31)) == date(2023, 2, 1)
    assert index.last_day_with("B1", "admitted", "all", date(2020, 12, 31)) is None
    assert index.last_day_with("B1", "confirmed", "all", date(2025, 12, 31)) is None
    assert index.last_day_with("B9", "admitted", "all", date(2025, 12, 31)) is None


def test_the_reference_rollup_refuses_unknown_units_and_unplaced_counts() -> None:
    table = rollup(
        TREES["legacy"], [Placement("B1", "legacy", ("C00001", "D001", "P01", "VN"), True)], {"B1": 2}
    )
    assert table.unit("D001").value == 2
    with pytest.raises(UnknownUnitError):
        table.unit("C00009")
    with pytest.raises(ValueError, match="no placement"):
        rollup(TREES["legacy"], [], {"B1": 2})


def test_tree_helpers() -> None:
    tree = TREES["legacy"]
    assert chain(tree, "C00003") == ("C00003", "D002", "P01", "VN")
    assert chain(tree, "VN") == ("VN",)
    assert lowest_common_ancestor(tree, ["C00001", "C00002", "C77777"]) == "D001"
    assert lowest_common_ancestor(tree, ["C00001", "C00003"]) == "P01"
    assert lowest_common_ancestor(tree, ["C77777"]) == "VN"
    assert lowest_common_ancestor(tree, []) == "VN"


def test_a_day_stays_active_while_any_count_on_it_is_positive() -> None:
    index = _index()
    day, period = date(2024, 9, 30), parse_period("2024-Q3")
    index.apply(TallyChange("B1", day, "admitted", "all", 1, 1))
    index.apply(TallyChange("B1", day, "sourced", "female", 2, 1))
    index.apply(TallyChange("B1", day, "admitted", "all", 0, 2))  # voided
    assert index.report("legacy", "C00001", period, "admitted", "all").reporting.branches_with_events == 1
    index.apply(TallyChange("B1", day, "sourced", "female", 0, 2))
    for text in ("2024-09-30", "2024-09", "2024-Q3", "2024-H2", "2024", "2024-09-01..2024-10-31"):
        report = index.report("legacy", "C00001", parse_period(text), "admitted", "all")
        assert report.reporting.branches_with_events == 0
