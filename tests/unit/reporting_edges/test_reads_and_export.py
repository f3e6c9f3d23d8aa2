"""Question validation (stable problem codes), the contract's answer shape, and the export rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pytest

from services.reporting.domain import Child, Reporting, UnitRollup, parse_period
from services.reporting.export import HEADERS, lines, to_csv, to_xlsx
from services.reporting.placing import Placer
from services.reporting.queries import RollupReader
from services.reporting.reads import ReportingReads, as_of, rollup_answer, targets_json
from shared.http import Problem
from shared.orgtree import load_org_trees

pytestmark = pytest.mark.unit


def CLOCK() -> datetime:  # noqa: N802
    return datetime(2026, 11, 22, 1, 0, 0, 123, tzinfo=UTC)


READS = ReportingReads(None, RollupReader(Placer(load_org_trees())), CLOCK)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("unit", "period", "tree", "metric", "category", "status", "code"),
    [
        ("C06901", None, None, "admitted", "all", 400, "invalid_period"),
        ("C06901", "2024-02-30", None, "admitted", "all", 400, "invalid_period"),
        ("C06901", "2024..2024-05", None, "admitted", "all", 400, "invalid_period"),
        ("C06901", "2024", "2030", "admitted", "all", 400, "invalid_tree"),
        ("C06901", "2024", None, "kết nạp", "all", 400, "invalid_metric"),
        ("C06901", "2024", None, "admitted", "women", 400, "invalid_category"),
        ("C99999", "2024", None, "admitted", "all", 404, "unknown_unit"),
        ("C06901", "2024", "2025", "admitted", "all", 404, "unknown_unit"),
    ],
)
def test_refusals(
    unit: str, period: str | None, tree: str | None, metric: str, category: str, status: int, code: str
) -> None:
    with pytest.raises(Problem) as caught:
        READS.question(unit, period, tree, metric, category)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_the_default_tree_is_in_force_on_the_last_day_unless_the_unit_only_exists_in_the_other() -> None:
    assert READS.question("P22", "2025-H1", None, "admitted", "all").tree == "legacy"
    assert READS.question("P22", "2025", None, "admitted", "all").tree == "2025"
    assert READS.question("C06901", "2025", None, "admitted", "all").tree == "legacy"
    assert READS.question("P22", "2024", "2025", "dropped.moved_away", "female").tree == "2025"


def test_lagging_years_are_the_last_full_years() -> None:
    unit, tree, window = READS.lagging_question("P10", 3, None)
    assert (unit.id, tree, window) == ("P10", "legacy", [2023, 2024, 2025])
    with pytest.raises(Problem) as caught:
        READS.lagging_question("P10", 51, None)
    assert caught.value.code == "invalid_years"


def test_targets_show_attainment_half_up_and_none_for_a_zero_target() -> None:
    assert targets_json({"resolution": 7, "assigned": 9}, 9) == {
        "resolution": {"value": 7, "attainment_pct": "128.57"},
        "assigned": {"value": 9, "attainment_pct": "100.00"},
    }
    assert targets_json({"assigned": 0}, 3) == {"assigned": {"value": 0}}
    assert targets_json({}, 3) == {}
    assert targets_json({"resolution": 3}, 1) == {"resolution": {"value": 3, "attainment_pct": "33.33"}}


ROLLUP = UnitRollup(
    "D200",
    "Huyện Đầm Hà",
    "district",
    9,
    1,
    (Child("C06895", "Xã Quảng Lợi", "commune", 0), Child("C06901", "Xã Quảng An", "commune", 8)),
    Reporting(17, 6),
)


def test_the_answer_has_the_contract_shape() -> None:
    question = READS.question("D200", "2024", None, "admitted", "all")
    body: dict[str, Any] = rollup_answer(question, ROLLUP, {"resolution": 7}, CLOCK())
    assert body == {
        "unit": {"id": "D200", "name": "Huyện Đầm Hà", "level": "district", "tree": "legacy"},
        "period": {"from": "2024-01-01", "to": "2024-12-31"},
        "metric": "admitted",
        "category": "all",
        "value": 9,
        "targets": {"resolution": {"value": 7, "attainment_pct": "128.57"}},
        "children": [
            {"id": "C06895", "name": "Xã Quảng Lợi", "level": "commune", "value": 0},
            {"id": "C06901", "name": "Xã Quảng An", "level": "commune", "value": 8},
        ],
        "unmapped": 1,
        "reporting": {"branches": 17, "branches_with_events": 6},
        "as_of": "2026-11-22T01:00:00Z",
    }
    assert as_of(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"


def test_export_rows_add_up_with_the_unmapped_line() -> None:
    rows = lines(ROLLUP, {"D200": {"assigned": 12}, "C06901": {"resolution": 7, "assigned": 0}})
    assert [r.cells() for r in rows] == [
        ("D200", "Huyện Đầm Hà", "Huyện", 9, None, None, 12, Decimal("75.00")),
        ("C06895", "Xã Quảng Lợi", "Xã", 0, None, None, None, None),
        ("C06901", "Xã Quảng An", "Xã", 8, 7, Decimal("114.29"), 0, None),
        ("", "Chưa xác định đơn vị (unmapped)", "", 1, None, None, None, None),
    ]
    assert rows[0].value == sum(r.value for r in rows[1:])
    parsed = list(csv.reader(io.StringIO(to_csv(rows).decode())))
    assert parsed[0] == list(HEADERS)
    assert parsed[3] == ["C06901", "Xã Quảng An", "Xã", "8", "7", "114.29", "0", ""]
    sheet = openpyxl.load_workbook(io.BytesIO(to_xlsx(rows, "Huyện Đầm Hà 2024"))).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[1] == ("D200", "Huyện Đầm Hà", "Huyện", 9, None, None, 12, 75.0)
    assert sheet.cell(row=2, column=8).number_format == "0.00"


def test_a_period_label_survives_into_the_question() -> None:
    assert READS.question("VN", "2020..2025", None, "admitted", "all").period == parse_period("2020..2025")
