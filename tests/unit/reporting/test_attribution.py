"""Which tree, which unit: placement of branches (the unmapped rule) and lagging branches."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.attribution import (
    BranchRegistration,
    InvalidTreeError,
    LaggingBranch,
    Placement,
    attributed_tree,
    lagging,
    lagging_years,
    place_branch,
    report_tree,
    target_tree,
)
from services.reporting.domain.periods import parse_period
from shared.orgtree import TreeVersion, tree_in_force

from .fakes import FakeCrossWalk, legacy_tree, tree_2025

pytestmark = pytest.mark.unit

# legacy: P01 > D001 > C00001, C00002; P01 > D002 (island, no commune); P02 > D003 > C00003
# 2025:   P01 > C00001, C00002;        P02 > C00003
TREES = {"legacy": legacy_tree([[2, 0], [1]]), "2025": tree_2025([2, 1])}
CROSSWALK = FakeCrossWalk(
    {
        ("legacy", "C00001"): frozenset({"C00002"}),
        ("legacy", "C00002"): frozenset({"C00001", "C00002"}),
        ("legacy", "P02"): frozenset({"P02"}),
        ("2025", "C00001"): frozenset({"C00001", "C00002"}),
        ("2025", "P02"): frozenset({"P02"}),
    }
)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_an_event_is_attributed_through_the_tree_in_force_on_its_day(day: date) -> None:
    assert attributed_tree(day) == tree_in_force(day) == ("legacy" if day <= date(2025, 6, 30) else "2025")


def test_report_tree_defaults_to_the_last_day_and_can_be_asked() -> None:
    assert report_tree(parse_period("2024")) == "legacy"
    assert report_tree(parse_period("2024"), "2025") == "2025"
    assert report_tree(parse_period("2025"), "legacy") == "legacy"
    with pytest.raises(InvalidTreeError) as caught:
        report_tree(parse_period("2024"), "2026")
    assert caught.value.code == "invalid_tree"


def test_a_target_without_tree_means_the_tree_in_force_when_it_was_sent() -> None:
    """Finding 6: intake, quota and reporting key such a target in the same tree."""
    january, july = datetime(2025, 1, 15, tzinfo=UTC), datetime(2025, 7, 2, tzinfo=UTC)
    assert (target_tree(january), target_tree(july)) == ("legacy", "2025")
    assert target_tree(july, "legacy") == "legacy"
    # 2025-06-30T17:00Z is already 1 July in Vietnam: the 2025 tree
    assert target_tree(datetime(2025, 6, 30, 17, tzinfo=UTC)) == "2025"
    assert target_tree(datetime(2025, 6, 30, 16, 59, tzinfo=UTC)) == "legacy"


def _place(
    tree: TreeVersion, legacy: str | None = None, new: str | None = None, registered: bool = True
) -> Placement:
    registration = BranchRegistration("B1", legacy, new) if registered else None
    return place_branch(TREES, tree, "B1", registration, CROSSWALK)


def test_a_branch_is_a_child_of_its_parent_in_the_asked_tree() -> None:
    placement = _place("legacy", "C00002", "C00003")
    assert (placement.chain, placement.mapped, placement.anchor) == (
        ("C00002", "D001", "P01", "VN"),
        True,
        "C00002",
    )
    assert _place("2025", "C00002", "C00003").chain == ("C00003", "P02", "VN")


def test_an_island_district_may_be_a_branch_parent_in_legacy() -> None:
    placement = _place("legacy", "D002")
    assert (placement.chain, placement.mapped) == (("D002", "P01", "VN"), True)


def test_an_unregistered_branch_is_unmapped_at_vn() -> None:
    for tree in ("legacy", "2025"):
        placement = _place(tree, registered=False)
        assert (placement.chain, placement.mapped) == (("VN",), False)


def test_a_branch_without_parent_in_the_asked_tree_is_unmapped_at_its_certain_container() -> None:
    assert _place("2025", "C00001").chain == ("C00002", "P01", "VN")  # one container: that commune
    assert _place("2025", "C00002").chain == ("P01", "VN")  # two communes: their province
    assert not _place("2025", "C00001").mapped
    assert _place("legacy", new="C00001").chain == ("D001", "P01", "VN")


def test_the_container_search_climbs_the_other_trees_ancestors() -> None:
    # C00003 (legacy) has no crosswalk entry, nor D003, but its province P02 has.
    assert _place("2025", "C00003").chain == ("P02", "VN")
    # 2025 C00003 has none; its province P02 maps to legacy P02.
    assert _place("legacy", new="C00003").chain == ("P02", "VN")


def test_unknown_parents_fall_back_without_dropping_the_branch() -> None:
    assert _place("legacy", "C77777").chain == ("VN",)  # unknown in its tree, nothing in the other
    placement = _place("legacy", "C77777", "C00001")  # unknown legacy id: use the 2025 parent
    assert (placement.chain, placement.mapped) == (("D001", "P01", "VN"), False)
    assert place_branch(TREES, "2025", "B1", BranchRegistration("B1", "C00001"), None).chain == ("VN",)


def test_registration_of_parents_object() -> None:
    registration = BranchRegistration.of(
        "B-C06901-03", {"legacy": "C06901"}, name="Chi bộ thôn Khe Và", kind="residential"
    )
    assert (registration.parent_in("legacy"), registration.parent_in("2025")) == ("C06901", None)
    assert registration.name == "Chi bộ thôn Khe Và"


@pytest.mark.parametrize(
    ("today", "count", "years"),
    [
        (date(2026, 11, 22), 3, (2023, 2024, 2025)),
        (date(2026, 1, 1), 1, (2025,)),
        (date(2024, 12, 31), 2, (2022, 2023)),
    ],
)
def test_lagging_years_are_the_last_full_years(today: date, count: int, years: tuple[int, ...]) -> None:
    assert lagging_years(today, count) == years


def test_lagging_years_needs_a_positive_count() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        lagging_years(date(2026, 1, 1), 0)


def test_lagging_lists_branches_without_admission_in_the_window_oldest_first() -> None:
    last = {
        "B-a": date(2022, 12, 31),
        "B-b": date(2023, 1, 1),
        "B-c": date(2019, 5, 1),
        "B-d": date(2025, 12, 31),
    }
    found = lagging(["B-a", "B-b", "B-c", "B-d", "B-e", "B-f"], last, [2023, 2024, 2025])
    assert found == [
        LaggingBranch("B-e", None),
        LaggingBranch("B-f", None),
        LaggingBranch("B-c", date(2019, 5, 1)),
        LaggingBranch("B-a", date(2022, 12, 31)),
    ]


def test_lagging_refuses_an_admission_after_the_window() -> None:
    with pytest.raises(ValueError, match="after the window"):
        lagging(["B-a"], {"B-a": date(2026, 1, 2)}, [2023, 2024, 2025])
    with pytest.raises(ValueError, match="at least one year"):
        lagging(["B-a"], {}, [])


@given(
    st.dictionaries(
        st.sampled_from([f"B{i}" for i in range(8)]), st.dates(date(2015, 1, 1), date(2025, 12, 31))
    ),
    st.integers(2016, 2025),
)
def test_lagging_is_exactly_no_admission_since_the_window_start(
    last: dict[str, date], first_year: int
) -> None:
    branches = [f"B{i}" for i in range(8)]
    years = list(range(first_year, 2026))
    found = {b.branch_id for b in lagging(branches, last, years)}
    assert found == {b for b in branches if b not in last or last[b].year < first_year}
