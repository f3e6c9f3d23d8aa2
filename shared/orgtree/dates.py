"""Which tree is in force on a day, and the local date of an instant.

Invariants: the `legacy` tree governs every local date up to and including
2025-06-30; the `2025` tree governs every local date from `REFORM_DATE`
(2025-07-01, when the two-level local government [chính quyền địa phương hai cấp]
took effect). Local dates are Vietnamese dates (Asia/Ho_Chi_Minh, UTC+07:00, no DST).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

TreeVersion = Literal["legacy", "2025"]

REFORM_DATE: date = date(2025, 7, 1)
VN_TZ: ZoneInfo = ZoneInfo("Asia/Ho_Chi_Minh")


def local_date(ts: datetime) -> date:
    """The calendar date of an aware instant in Vietnam; ValueError for a naive datetime.

    2025-06-30T17:00:00Z is already 2025-07-01 in Vietnam.
    """
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"naive datetime {ts.isoformat()}: an offset is needed to place it in Vietnam")
    return ts.astimezone(VN_TZ).date()


def tree_in_force(day: date) -> TreeVersion:
    """`legacy` up to 2025-06-30 inclusive, `2025` from 2025-07-01 on."""
    if isinstance(day, datetime):
        # A datetime is a date subclass; its wall clock may not be Vietnamese, so refuse it.
        raise TypeError("tree_in_force takes a local date; use local_date(ts) first")
    return "2025" if day >= REFORM_DATE else "legacy"
