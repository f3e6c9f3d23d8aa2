"""Period parsing: every accepted form, every refused one, and the bucket cut."""

from __future__ import annotations

import itertools
from calendar import monthrange
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.periods import Period, PeriodError, month_key, month_label, parse_period

pytestmark = pytest.mark.unit

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
years = st.integers(2000, 2100)


def _expect(text: str, start: str, end: str, label: str | None = None) -> None:
    period = parse_period(text)
    assert (period.start, period.end, period.label) == (
        date.fromisoformat(start),
        date.fromisoformat(end),
        label or text,
    )


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2024", "2024-01-01", "2024-12-31"),
        ("2024-H1", "2024-01-01", "2024-06-30"),
        ("2024-H2", "2024-07-01", "2024-12-31"),
        ("2024-Q1", "2024-01-01", "2024-03-31"),
        ("2024-Q2", "2024-04-01", "2024-06-30"),
        ("2024-Q3", "2024-07-01", "2024-09-30"),
        ("2024-Q4", "2024-10-01", "2024-12-31"),
        ("2024-05", "2024-05-01", "2024-05-31"),
        ("2024-02", "2024-02-01", "2024-02-29"),
        ("2023-02", "2023-02-01", "2023-02-28"),
        ("2024-05-15", "2024-05-15", "2024-05-15"),
        ("2024-02-29", "2024-02-29", "2024-02-29"),
        ("2024-01-01..2024-05-15", "2024-01-01", "2024-05-15"),
        ("2024-05-15..2024-05-15", "2024-05-15", "2024-05-15"),
        ("2020..2025", "2020-01-01", "2025-12-31"),
        ("2024..2024", "2024-01-01", "2024-12-31"),
        ("2024-01..2024-03", "2024-01-01", "2024-03-31"),
        ("2024-Q1..2024-Q3", "2024-01-01", "2024-09-30"),
        ("2024-H2..2025-H1", "2024-07-01", "2025-06-30"),
        ("2000", "2000-01-01", "2000-12-31"),
        ("2100-12-31", "2100-12-31", "2100-12-31"),
    ],
)
def test_every_accepted_form(text: str, start: str, end: str) -> None:
    _expect(text, start, end)


@pytest.mark.parametrize(
    ("text", "label"), [("2024-q2", "2024-Q2"), ("2024-h1..2024-h2", "2024-H1..2024-H2")]
)
def test_half_and_quarter_letters_are_case_insensitive(text: str, label: str) -> None:
    assert parse_period(text) == parse_period(label)
    assert parse_period(text).label == label


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "2024 ", " 2024", "24", "02024", "1999", "2101", "2024-13", "2024-00", "2024-1",
        "2024-Q0", "2024-Q5", "2024-H0", "2024-H3", "2024-Q", "2024-Q12", "2024-S1", "2024-W05",
        "2024-02-30", "2023-02-29", "2024-04-31", "2024-05-00", "2024-05-32", "2024-5-15", "2024/05/15",
        "2024-05-15T00:00", "2024..", "..2024", "2024...2025", "2025..2024", "2024-05..2024-04",
        "2024-05-15..2024-05-14", "2024-Q3..2024-Q2", "2024..2024-05", "2024-05..2024-05-31",
        "2024-Q1..2024-05", "2024-01-01..2024-05-15..2024-06-01", "1999..2024", "2024..2101",
        "２０２４", "٢٠٢٤", "abcd", "latest", "2024-05-15 ", "2024-0x", "x" * 1000,
    ],
)  # fmt: skip
def test_every_refused_form_is_invalid_period(text: str) -> None:
    with pytest.raises(PeriodError) as caught:
        parse_period(text)
    assert caught.value.code == "invalid_period"
    assert caught.value.detail


@given(days)
def test_any_day_parses_to_itself(day: date) -> None:
    period = parse_period(day.isoformat())
    assert (period.start, period.end) == (day, day)


@given(days, days)
def test_any_ordered_day_range_parses_inclusive(a: date, b: date) -> None:
    text = f"{min(a, b).isoformat()}..{max(a, b).isoformat()}"
    period = parse_period(text)
    assert (period.start, period.end, period.label) == (min(a, b), max(a, b), text)
    if a != b:
        with pytest.raises(PeriodError):
            parse_period(f"{max(a, b).isoformat()}..{min(a, b).isoformat()}")


@given(years, st.integers(1, 12))
def test_any_month_covers_its_calendar_days(year: int, month: int) -> None:
    period = parse_period(f"{year}-{month:02d}")
    assert period.start == date(year, month, 1)
    assert period.end == date(year, month, monthrange(year, month)[1])
    assert period.months() == (f"{year}-{month:02d}",)


@given(years)
def test_halves_and_quarters_tile_their_year(year: int) -> None:
    for parts in (["H1", "H2"], ["Q1", "Q2", "Q3", "Q4"]):
        periods = [parse_period(f"{year}-{p}") for p in parts]
        assert periods[0].start == date(year, 1, 1)
        assert periods[-1].end == date(year, 12, 31)
        for before, after in itertools.pairwise(periods):
            assert after.start == before.end + timedelta(days=1)


def test_years_months_and_whole_years() -> None:
    term = parse_period("2020..2025")
    assert term.years() == (2020, 2021, 2022, 2023, 2024, 2025)
    assert term.is_whole_years()
    assert len(term.months()) == 72
    assert parse_period("2024").is_whole_years()
    assert not parse_period("2024-H1").is_whole_years()
    assert parse_period("2024-11-20..2025-02-03").years() == (2024, 2025)
    assert parse_period("2024-11-20..2025-02-03").months() == ("2024-11", "2024-12", "2025-01", "2025-02")


@pytest.mark.parametrize(
    ("text", "tree"),
    [("2024", "legacy"), ("2025", "2025"), ("2025-H1", "legacy"), ("2025-06-30", "legacy"),
     ("2025-07-01", "2025"), ("2025-Q3", "2025"), ("2024-12-01..2025-06-30", "legacy"),
     ("2020..2025", "2025")],
)  # fmt: skip
def test_default_tree_is_the_tree_in_force_on_the_last_day(text: str, tree: str) -> None:
    assert parse_period(text).default_tree() == tree


@given(days, days)
def test_spans_cut_the_period_into_disjoint_buckets_covering_it(a: date, b: date) -> None:
    period = Period.between(min(a, b), max(a, b))
    spans = period.spans()
    covered: list[date] = []
    for year in spans.years:
        covered += _days(date(year, 1, 1), date(year, 12, 31))
    for key in spans.months:
        first = date.fromisoformat(month_label(key) + "-01")
        covered += _days(first, date(first.year, first.month, monthrange(first.year, first.month)[1]))
    covered += [date.fromordinal(d) for d in spans.days]
    assert sorted(covered) == _days(period.start, period.end)
    assert len(set(spans.buckets)) == len(spans.buckets) == len(spans)
    assert len(spans.days) <= 60
    assert len(spans.months) <= 22


@given(days)
def test_bucket_kinds_never_collide(day: date) -> None:
    assert 2000 <= day.year <= 2100 < 24_000 <= month_key(day) <= 25_211 < 730_000 < day.toordinal()
    assert month_label(month_key(day)) == day.isoformat()[:7]


def test_between_checks_bounds_and_order() -> None:
    assert Period.between(date(2024, 1, 1), date(2024, 1, 31)).label == "2024-01-01..2024-01-31"
    with pytest.raises(PeriodError):
        Period.between(date(2024, 2, 1), date(2024, 1, 31))
    with pytest.raises(PeriodError):
        Period.between(date(1999, 12, 31), date(2024, 1, 31))


def test_contains() -> None:
    period = parse_period("2024-Q2")
    assert date(2024, 4, 1) in period
    assert date(2024, 6, 30) in period
    assert date(2024, 3, 31) not in period
    assert "2024-05-01" not in period


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@pytest.mark.parametrize(
    ("text", "bucket"),
    [("2024", 2024), ("2024-H1", 4048), ("2024-H2", 4049), ("2024-Q1", 8096), ("2024-Q4", 8099),
     ("2024-05", 24_292), ("2024-05-15", date(2024, 5, 15).toordinal()), ("2024-01..2024-03", 8096),
     ("2024-07..2024-12", 4049), ("2024-02..2024-04", None), ("2024-01-01..2024-05-15", None),
     ("2020..2025", None), ("2024-12..2025-01", None), ("2024-01-02..2024-01-31", None)],
)  # fmt: skip
def test_a_calendar_period_is_one_bucket(text: str, bucket: int | None) -> None:
    assert parse_period(text).calendar_bucket() == bucket


@given(days)
def test_the_five_calendar_periods_of_a_day_have_five_distinct_buckets(day: date) -> None:
    periods = [parse_period(name) for name in _calendar_names(day)]
    buckets = [p.calendar_bucket() for p in periods]
    assert None not in buckets
    assert len(set(buckets)) == 5
    assert [Period.between(p.start, p.end).calendar_bucket() for p in periods] == buckets


@given(days, days)
def test_only_calendar_periods_have_a_bucket(a: date, b: date) -> None:
    period = Period.between(min(a, b), max(a, b))
    calendar = {(p.start, p.end) for p in map(parse_period, _calendar_names(period.start))}
    assert (period.calendar_bucket() is not None) == ((period.start, period.end) in calendar)


def _calendar_names(day: date) -> list[str]:
    half, quarter = (day.month - 1) // 6 + 1, (day.month - 1) // 3 + 1
    return [
        str(day.year),
        f"{day.year}-H{half}",
        f"{day.year}-Q{quarter}",
        day.isoformat()[:7],
        day.isoformat(),
    ]
