"""A period becomes month ranges, day ranges and day bitmasks that cover exactly its days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain import Period, parse_period
from services.reporting.queries import Buckets, _activity_condition, _day_mask, _month_days, _runs, _runs_of

pytestmark = pytest.mark.unit

days = st.dates(min_value=date(2019, 1, 1), max_value=date(2027, 12, 31))


def covered(buckets: Buckets) -> set[date]:
    found: set[date] = set()
    for low, high in _month_days(buckets.months) + buckets.days:
        found |= {date.fromordinal(o) for o in range(low, high + 1)}
    return found


@given(days, st.integers(min_value=0, max_value=900))
def test_months_and_days_cover_the_period_exactly(start: date, length: int) -> None:
    period = Period.between(start, start + timedelta(days=length))
    buckets = Buckets.of(period)
    expected = {start + timedelta(days=d) for d in range(length + 1)}
    assert covered(buckets) == expected
    assert len(buckets.months) <= 1
    assert len(buckets.days) <= 2


def test_a_year_is_one_run_of_twelve_months_and_no_day() -> None:
    assert Buckets.of(parse_period("2024")) == Buckets([(2024 * 12, 2024 * 12 + 11)], [])
    assert Buckets.of(parse_period("2020..2025")) == Buckets([(2020 * 12, 2025 * 12 + 11)], [])


def test_a_date_range_is_whole_months_and_its_edges() -> None:
    buckets = Buckets.of(parse_period("2024-01-20..2024-05-15"))
    assert buckets.months == [(2024 * 12 + 1, 2024 * 12 + 3)]
    assert buckets.days == [
        (date(2024, 1, 20).toordinal(), date(2024, 1, 31).toordinal()),
        (date(2024, 5, 1).toordinal(), date(2024, 5, 15).toordinal()),
    ]


@given(days, st.integers(min_value=0, max_value=900))
def test_the_activity_bitmasks_select_exactly_the_days_of_the_period(start: date, length: int) -> None:
    period = Period.between(start, start + timedelta(days=length))
    selected = set()
    for year in period.years():
        for month in range(1, 13):
            first = max(period.start, date(year, 1, 1))
            last = min(period.end, date(year, 12, 31))
            if not first.month <= month <= last.month:
                continue
            mask = _day_mask(year, month, first, last)
            selected |= {date(year, month, bit + 1) for bit in range(31) if mask >> bit & 1}
    assert selected == {start + timedelta(days=d) for d in range(length + 1)}


def test_the_activity_condition_tests_whole_months_without_a_mask() -> None:
    condition, params = _activity_condition(parse_period("2024-01-15..2024-03-31"))
    assert "a.m02 <> 0" in condition
    assert "a.m03 <> 0" in condition
    assert params["b2024_1"] == ((1 << 31) - 1) & ~((1 << 14) - 1)


def test_runs_merge_consecutive_and_touching_ranges() -> None:
    assert _runs([1, 2, 3, 5, 7, 8]) == [(1, 3), (5, 5), (7, 8)]
    assert _runs_of([(10, 12), (1, 3), (4, 6), (13, 13)]) == [(1, 6), (10, 13)]
