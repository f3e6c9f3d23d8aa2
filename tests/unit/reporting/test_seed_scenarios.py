"""The seed stories as pure tests, on the official trees.

Xã Quảng An (C06901 < D200 < P22): 9 admissions [kết nạp] by mid-May 2024, "đạt 128,5%
chỉ tiêu Nghị quyết Đảng ủy xã, đạt 100% chỉ tiêu huyện giao" (resolution 7, assigned 9).
Xã Hợp Thành (C02680 < D080 < P10): 6 admitted in 2021 against 6, 2 in 2022 against 6.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.reporting.domain import (
    Attainment,
    BranchRegistration,
    OrgTreesCrossWalk,
    RollupIndex,
    TallyChange,
    Target,
    TargetBook,
    UnitRollup,
    UnknownUnitError,
    lagging,
    lagging_years,
    parse_period,
)
from shared.orgtree import TreeVersion, load_org_trees

pytestmark = pytest.mark.unit

TREES = load_org_trees()
CROSSWALK = OrgTreesCrossWalk(TREES)
QUANG_AN_2025 = "C06913"  # Xã Quảng An's 2025 commune (Xã Quảng Tân, Quảng Ninh P22)


def _admit(index: RollupIndex, branch_id: str, days: list[date]) -> None:
    """One admission per listed day (same-day admissions raise that day's count)."""
    counts: dict[date, int] = {}
    for day in days:
        counts[day] = counts.get(day, 0) + 1
        index.apply(TallyChange(branch_id, day, "admitted", "all", counts[day], counts[day]))


def _report(index: RollupIndex, tree: TreeVersion, unit_id: str, period: str) -> UnitRollup:
    report = index.report(tree, unit_id, parse_period(period), "admitted", "all")
    assert report.value == sum(child.value for child in report.children) + report.unmapped
    return report


def _quang_an() -> RollupIndex:
    index = RollupIndex(TREES, CROSSWALK)
    for n in (1, 2, 3):
        parents = {"legacy": "C06901", "2025": QUANG_AN_2025}
        index.register(BranchRegistration.of(f"B-C06901-0{n}", parents, f"Chi bộ thôn {n}", "residential"))
    _admit(index, "B-C06901-01", [date(2024, 2, 3), date(2024, 2, 3), date(2024, 3, 1), date(2024, 5, 12)])
    _admit(index, "B-C06901-02", [date(2024, 1, 15), date(2024, 4, 30), date(2024, 5, 12)])
    _admit(index, "B-C06901-03", [date(2024, 5, 14), date(2024, 5, 15)])
    return index


def test_quang_an_9_admissions_reach_128_57_and_100_percent() -> None:
    index = _quang_an()
    book = TargetBook(
        [
            Target("C06901", "legacy", 2024, "resolution", 7, datetime(2024, 1, 5, tzinfo=UTC)),
            Target("C06901", "legacy", 2024, "assigned", 9, datetime(2024, 1, 6, tzinfo=UTC)),
        ]
    )
    period = parse_period("2024")
    tree = period.default_tree()
    report = _report(index, tree, "C06901", "2024")
    assert (tree, report.name, report.level, report.value, report.unmapped) == (
        "legacy",
        "Xã Quảng An",
        "commune",
        9,
        0,
    )
    assert [(c.id, c.level, c.value) for c in report.children] == [
        ("B-C06901-01", "branch", 4),
        ("B-C06901-02", "branch", 3),
        ("B-C06901-03", "branch", 2),
    ]
    assert (report.reporting.branches, report.reporting.branches_with_events) == (3, 3)
    assert book.attainments("C06901", tree, period.years(), "admitted", "all", report.value) == {
        "resolution": Attainment(7, "128.57"),
        "assigned": Attainment(9, "100.00"),
    }


@pytest.mark.parametrize("unit_id", ["D200", "P22", "VN"])
def test_quang_an_admissions_roll_up_to_district_province_and_nation(unit_id: str) -> None:
    report = _report(_quang_an(), "legacy", unit_id, "2024")
    assert report.value == 9
    assert report.unmapped == 0
    assert [c.id for c in report.children] == [u.id for u in TREES.legacy.children(unit_id)]  # zeros included
    assert sum(1 for c in report.children if c.value) == 1


def test_mid_may_progress_and_partial_periods() -> None:
    index = _quang_an()
    assert _report(index, "legacy", "C06901", "2024-01-01..2024-05-14").value == 8
    assert _report(index, "legacy", "D200", "2024-05-15").value == 1
    assert _report(index, "legacy", "P22", "2024-Q2").value == 5
    assert _report(index, "legacy", "VN", "2024-H2").value == 0
    assert _report(index, "legacy", "VN", "2024-H2").reporting.branches_with_events == 0


def test_a_2024_report_asked_in_tree_2025_restates_history_in_todays_units() -> None:
    index = _quang_an()
    commune = _report(index, "2025", QUANG_AN_2025, "2024")
    assert (commune.value, commune.unmapped, len(commune.children)) == (9, 0, 3)
    assert _report(index, "2025", "P22", "2024").value == 9
    assert _report(index, "2025", "VN", "2024").value == 9


def test_a_legacy_only_branch_is_unmapped_at_its_certain_2025_commune_never_dropped() -> None:
    index = _quang_an()
    index.register(BranchRegistration.of("B-C06901-09", {"legacy": "C06901"}))
    _admit(index, "B-C06901-09", [date(2024, 6, 1), date(2024, 6, 2)])
    assert _report(index, "legacy", "C06901", "2024").value == 11
    commune = _report(index, "2025", QUANG_AN_2025, "2024")
    assert (commune.value, commune.unmapped) == (11, 2)
    assert "B-C06901-09" not in [c.id for c in commune.children]
    assert _report(index, "2025", "VN", "2024").value == 11


def test_a_branch_registered_late_moves_from_vn_unmapped_to_its_commune() -> None:
    index = _quang_an()
    _admit(index, "B-C06901-07", [date(2024, 3, 3)])
    for tree in ("legacy", "2025"):
        nation = _report(index, tree, "VN", "2024")
        assert (nation.value, nation.unmapped) == (10, 1)
    index.register(BranchRegistration.of("B-C06901-07", {"legacy": "C06901", "2025": QUANG_AN_2025}))
    assert _report(index, "legacy", "VN", "2024").unmapped == 0
    assert _report(index, "legacy", "C06901", "2024").value == 10
    assert _report(index, "2025", QUANG_AN_2025, "2024").value == 10


def test_duplicate_and_stale_tally_changes_count_once() -> None:
    index = _quang_an()
    assert index.apply(TallyChange("B-C06901-03", date(2024, 5, 15), "admitted", "all", 1, 1)) == 0
    assert index.apply(TallyChange("B-C06901-03", date(2024, 5, 15), "admitted", "all", 0, 2)) == -1  # voided
    assert index.apply(TallyChange("B-C06901-03", date(2024, 5, 15), "admitted", "all", 1, 1)) == 0  # stale
    assert _report(index, "legacy", "VN", "2024").value == 8


def _hop_thanh() -> RollupIndex:
    index = RollupIndex(TREES, CROSSWALK)
    index.register(
        BranchRegistration.of("B-C02680-01", {"legacy": "C02680", "2025": "C02680"}, "Chi bộ thôn 1")
    )
    index.register(
        BranchRegistration.of("B-C02680-02", {"legacy": "C02680", "2025": "C02680"}, "Chi bộ thôn 2")
    )
    _admit(index, "B-C02680-01", [date(2021, 3, 3), date(2021, 3, 3), date(2021, 9, 2), date(2021, 11, 7)])
    _admit(
        index, "B-C02680-02", [date(2021, 5, 19), date(2021, 12, 22), date(2022, 8, 19), date(2022, 12, 2)]
    )
    return index


@pytest.mark.parametrize(
    ("period", "value", "pct"), [("2021", 6, "100.00"), ("2022", 2, "33.33"), ("2020..2025", 8, "66.67")]
)
def test_hop_thanh_against_its_resolution_targets(period: str, value: int, pct: str) -> None:
    book = TargetBook(
        Target("C02680", "legacy", year, "resolution", 6, datetime(year, 1, 10, tzinfo=UTC))
        for year in (2021, 2022)
    )
    parsed = parse_period(period)
    report = _report(_hop_thanh(), "legacy", "C02680", period)
    assert report.value == value
    assert book.attainments("C02680", "legacy", parsed.years(), "admitted", "all", value) == {
        "resolution": Attainment(12 if period == "2020..2025" else 6, pct)
    }


def test_hop_thanh_rolls_up_to_lao_cai_in_both_trees() -> None:
    index = _hop_thanh()
    assert [_report(index, "legacy", u, "2021").value for u in ("D080", "P10", "VN")] == [6, 6, 6]
    assert [_report(index, "2025", u, "2020..2025").value for u in ("C02680", "P15", "VN")] == [8, 8, 8]


def test_hop_thanh_branches_are_lagging_in_2023_to_2025() -> None:
    index = _hop_thanh()
    years = lagging_years(date(2026, 11, 22), 3)
    branches = sorted(index.branches_under("legacy", "D080"))
    last = {}
    for branch in branches:
        found = index.last_day_with(branch, "admitted", "all", date(max(years), 12, 31))
        if found is not None:
            last[branch] = found
    assert [(b.branch_id, b.last_admission) for b in lagging(branches, last, years)] == [
        ("B-C02680-01", date(2021, 11, 7)),
        ("B-C02680-02", date(2022, 12, 2)),
    ]


def test_month_documents_for_the_rollups_topic() -> None:
    index = _quang_an()
    dirty = set(index.drain_dirty())
    assert {
        ("legacy", "P22", "2024-05"),
        ("2025", QUANG_AN_2025, "2024-05"),
        ("legacy", "VN", "2024-01"),
    } <= dirty
    assert index.month_totals("legacy", "D200", "2024-05").metrics == {"admitted": {"all": 4}}
    assert index.month_totals("legacy", "D200", "2024-06").metrics == {}


def test_an_unknown_unit_is_refused() -> None:
    with pytest.raises(UnknownUnitError) as caught:
        _quang_an().report("2025", "D200", parse_period("2024"), "admitted", "all")
    assert caught.value.code == "unknown_unit"
