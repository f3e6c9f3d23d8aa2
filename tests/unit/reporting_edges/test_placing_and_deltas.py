"""What one count updates: the chain's monthly and daily rows, unmapped at the anchor, the dirty region."""

from __future__ import annotations

from datetime import date

import pytest

from services.reporting.aggregates import ActivityMasks, Deltas, month_of
from services.reporting.bulk import Row
from services.reporting.domain import BranchRegistration
from services.reporting.placing import Placer
from services.reporting.tables import TOTAL, UNMAPPED
from services.reporting.unitkeys import unit_of
from shared.orgtree import load_org_trees

pytestmark = pytest.mark.unit

PLACER = Placer(load_org_trees())
DAY = date(2024, 5, 12).toordinal()
MONTH = 2024 * 12 + 4


def _ids(keys: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(unit_of(key)[1] for key in keys)


def _readable(rows: list[Row]) -> list[Row]:
    """(tree, unit_id, series, bucket, part, value) of rows keyed by unit key."""
    return sorted((*unit_of(row[0]), *row[1:]) for row in rows)


def test_a_legacy_commune_is_summed_from_its_branches_its_district_up_keep_rows() -> None:
    plan = PLACER.plan("legacy", "C06901")
    assert plan.chain == ("C06901", "D200", "P22", "VN")
    assert _ids(plan.months) == ("D200", "P22", "VN")
    assert _ids(plan.days) == ("D200", "P22", "VN")
    assert plan.region == "P22"


def test_a_2025_commune_keeps_months_and_days_because_a_province_has_a_hundred() -> None:
    plan = PLACER.plan("2025", "C06913")
    assert (_ids(plan.months), _ids(plan.days), plan.region) == (
        ("C06913", "P22", "VN"),
        ("C06913", "P22", "VN"),
        "P22",
    )


def test_an_island_district_is_a_leaf_that_keeps_months() -> None:
    plan = PLACER.plan("legacy", "D318")
    assert plan.chain == ("D318", "P31", "VN")
    assert _ids(plan.months) == ("D318", "P31", "VN")
    assert PLACER.is_leaf("legacy", "D318")


def test_placements_follow_the_domain_rule() -> None:
    registration = BranchRegistration("B-1", "C06901", None)
    legacy = PLACER.place("legacy", "B-1", registration)
    assert (legacy.anchor, legacy.mapped, legacy.district_id, legacy.province_id) == (
        "C06901",
        True,
        "D200",
        "P22",
    )
    restated = PLACER.place("2025", "B-1", registration)
    assert (restated.anchor, restated.mapped, restated.province_id) == ("C06913", False, "P22")
    nowhere = PLACER.unregistered("2025", "B-2")
    assert (nowhere.anchor, nowhere.mapped) == ("VN", False)


def test_a_delta_reaches_every_kept_row_and_unmapped_only_at_the_anchor() -> None:
    deltas = Deltas()
    deltas.add(PLACER.plan("2025", "C06913"), False, 301, DAY, 2)
    # (unit, series, bucket, part, value): the rows the fold writes, the unit read back
    assert _readable(deltas.month_rows()) == sorted(
        [
            ("2025", "C06913", 301, MONTH, TOTAL, 2),
            ("2025", "P22", 301, MONTH, TOTAL, 2),
            ("2025", "VN", 301, MONTH, TOTAL, 2),
            ("2025", "C06913", 301, MONTH, UNMAPPED, 2),
        ]
    )
    assert _readable(deltas.day_rows()) == sorted(
        [
            ("2025", "C06913", 301, DAY, TOTAL, 2),
            ("2025", "P22", 301, DAY, TOTAL, 2),
            ("2025", "VN", 301, DAY, TOTAL, 2),
            ("2025", "C06913", 301, DAY, UNMAPPED, 2),
        ]
    )
    assert deltas.dirty == {("2025", "P22", MONTH)}


def test_a_move_that_cancels_out_writes_nothing() -> None:
    deltas = Deltas()
    plan = PLACER.plan("legacy", "C06901")
    deltas.add(plan, True, 301, DAY, 3)
    deltas.add(plan, True, 301, DAY, -3)
    assert deltas.month_rows() == []
    assert deltas.day_rows() == []


def test_branch_counts_follow_the_whole_chain() -> None:
    deltas = Deltas()
    deltas.count_branch(PLACER.plan("legacy", "C06901"), +1)
    deltas.count_branch(PLACER.plan("legacy", "C06898"), -1)
    assert dict(deltas.branches) == {
        ("legacy", "C06901"): 1,
        ("legacy", "C06898"): -1,
        ("legacy", "D200"): 0,
        ("legacy", "P22"): 0,
        ("legacy", "VN"): 0,
    }
    assert sorted(deltas.branch_rows()) == [("legacy", "C06898", -1), ("legacy", "C06901", 1)]


def test_activity_masks_set_and_clear_day_bits() -> None:
    masks = ActivityMasks()
    masks.mark("B-1", date(2024, 2, 29).toordinal(), True)
    masks.mark("B-1", date(2024, 2, 1).toordinal(), True)
    masks.mark("B-1", date(2024, 12, 31).toordinal(), False)
    places = ("C06901", "D200", "P22", "C06913", "P22")
    assert masks.set_rows(lambda _: places) == [("B-1", 2024, 0, (1 << 28) | 1, *([0] * 10), *places)]
    assert masks.clear_rows() == [("B-1", 2024, *([0] * 11), 1 << 30)]


def test_month_of_is_the_domain_month_key() -> None:
    assert month_of(date(2024, 1, 1).toordinal()) == 2024 * 12
    assert month_of(date(2025, 12, 31).toordinal()) == 2025 * 12 + 11
