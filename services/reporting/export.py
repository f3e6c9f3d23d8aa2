"""Exports of one rollup as CSV or XLSX, with Vietnamese column headers [báo cáo xuất file].

Rows: the unit itself, then each child (zeros included), then, when not zero, the
counts with no place in the tree (``unmapped``), so the children plus that row add
up to the unit. Numbers are numbers in the spreadsheet (attainment too, with two
decimals); the CSV writes them as plain digits with a dot.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from services.reporting.domain import UnitRollup
from services.reporting.queries import attainments

HEADERS: Final = (
    "Mã đơn vị",
    "Tên đơn vị",
    "Cấp",
    "Số lượng",
    "Chỉ tiêu Nghị quyết",
    "Tỷ lệ đạt NQ (%)",
    "Chỉ tiêu cấp trên giao",
    "Tỷ lệ đạt chỉ tiêu giao (%)",
)
LEVELS: Final = {
    "national": "Toàn quốc",
    "province": "Tỉnh",
    "district": "Huyện",
    "commune": "Xã",
    "branch": "Chi bộ",
}
UNMAPPED_NAME: Final = "Chưa xác định đơn vị (unmapped)"
CSV_TYPE: Final = "text/csv; charset=utf-8"
XLSX_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Cell = str | int | Decimal | None


@dataclass(frozen=True, slots=True)
class Line:
    unit_id: str
    name: str
    level: str
    value: int
    resolution: int | None
    resolution_pct: Decimal | None
    assigned: int | None
    assigned_pct: Decimal | None

    def cells(self) -> tuple[Cell, ...]:
        return (
            self.unit_id,
            self.name,
            LEVELS.get(self.level, self.level),
            self.value,
            self.resolution,
            self.resolution_pct,
            self.assigned,
            self.assigned_pct,
        )


def lines(found: UnitRollup, targets: dict[str, dict[str, int]]) -> list[Line]:
    """The unit, its children and the unmapped remainder, each with its targets."""
    rows = [_line(found.unit_id, found.name, found.level, found.value, targets.get(found.unit_id, {}))]
    rows += [_line(c.id, c.name, c.level, c.value, targets.get(c.id, {})) for c in found.children]
    if found.unmapped:
        rows.append(_line("", UNMAPPED_NAME, "", found.unmapped, {}))
    return rows


def _line(unit_id: str, name: str, level: str, value: int, targets: dict[str, int]) -> Line:
    found = attainments(targets, value)
    resolution, assigned = found.get("resolution"), found.get("assigned")
    return Line(
        unit_id,
        name,
        level,
        value,
        resolution.value if resolution else None,
        _pct(resolution.attainment_pct if resolution else None),
        assigned.value if assigned else None,
        _pct(assigned.attainment_pct if assigned else None),
    )


def _pct(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def to_csv(rows: list[Line]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row.cells()])
    return buffer.getvalue().encode("utf-8")


def to_xlsx(rows: list[Line], title: str) -> bytes:
    # imported here: openpyxl costs ~0.8 s at every start of the service, for a rare export
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Báo cáo"
    sheet.append(list(HEADERS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        values = [float(c) if isinstance(c, Decimal) else c for c in row.cells()]
        sheet.append(values)
        for index in (6, 8):
            sheet.cell(row=sheet.max_row, column=index).number_format = "0.00"
    for column, width in zip("ABCDEFGH", (12, 36, 10, 10, 18, 16, 22, 26), strict=True):
        sheet.column_dimensions[column].width = width
    book.properties.title = title
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
