"""Report periods [kỳ báo cáo]: parsing the `period` query parameter (CONTRACT.md §3).

Accepted forms (years 2000..2100; `H`/`Q` case-insensitive, labels come out upper-case):

| form | example | covers |
| --- | --- | --- |
| year | `2024` | 2024-01-01..2024-12-31 |
| half | `2024-H1`, `2024-H2` | Jan-Jun, Jul-Dec |
| quarter | `2024-Q1`..`2024-Q4` | three months |
| month | `2024-05` | the calendar month |
| day | `2024-05-15` | one local (Vietnamese) day |
| range | `A..B`, A and B of the SAME form | A's first day .. B's last day, inclusive |

So `2024-01-01..2024-05-15` is a day range, `2020..2025` a party term [nhiệm kỳ]
(2020-01-01..2025-12-31), `2024-01..2024-03` a month range, `2024-Q1..2024-Q2` a
quarter range. Mixed forms (`2024..2024-05`), reversed ranges, impossible dates,
whitespace and anything else raise `PeriodError` (code `invalid_period`).

Invariants: `start <= end`; both inside 2000-01-01..2100-12-31; `spans()` cuts the
period into whole years, whole months and single days, disjoint and covering it
exactly, so any sum over the period is a sum over those buckets.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta

from shared.orgtree import TreeVersion, tree_in_force

MIN_YEAR = 2000
MAX_YEAR = 2100
INVALID_PERIOD = "invalid_period"

_SINGLE = re.compile(r"(\d{4})(?:-(?:([HQ])(\d)|(\d{2})(?:-(\d{2}))?))?", re.IGNORECASE | re.ASCII)
_MAX_TEXT = 64


class PeriodError(ValueError):
    """A period the contract does not know; `code` is always `invalid_period`."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.code = INVALID_PERIOD
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Spans:
    """A period cut into buckets: `years`, `months` as `month_key`, `days` as ordinals."""

    years: tuple[int, ...]
    months: tuple[int, ...]
    days: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.years) + len(self.months) + len(self.days)

    @property
    def buckets(self) -> tuple[int, ...]:
        """All bucket keys in one tuple: the three ranges are disjoint (see `month_key`)."""
        return (*self.years, *self.months, *self.days)


def month_key(day: date) -> int:
    """A month as one int (`year * 12 + month - 1`), the bucket key of monthly sums.

    Years (2000..2100), half keys (4000..4201), quarter keys (8000..8403), month
    keys (24000..25211) and day ordinals (730120..767010) never overlap, so one
    int names a calendar bucket of any size.
    """
    return day.year * 12 + day.month - 1


def quarter_key(day: date) -> int:
    """A quarter as one int (`year * 4 + quarter - 1`: 8000..8403)."""
    return day.year * 4 + (day.month - 1) // 3


def half_key(day: date) -> int:
    """A half-year as one int (`year * 2 + half - 1`: 4000..4201)."""
    return day.year * 2 + (day.month - 1) // 6


def month_label(key: int) -> str:
    """`YYYY-MM` of a `month_key`."""
    return f"{key // 12:04d}-{key % 12 + 1:02d}"


@dataclass(frozen=True, slots=True)
class Period:
    """An inclusive run of local days, with the label it was asked by."""

    start: date
    end: date
    label: str

    @classmethod
    def between(cls, start: date, end: date) -> Period:
        """A day range built in code; same bounds and rules as a parsed one."""
        _check_bounds(start, end, f"{start.isoformat()}..{end.isoformat()}")
        return cls(start, end, f"{start.isoformat()}..{end.isoformat()}")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    def years(self) -> tuple[int, ...]:
        """Every calendar year the period touches (targets are per year)."""
        return tuple(range(self.start.year, self.end.year + 1))

    def months(self) -> tuple[str, ...]:
        """Every month the period touches, as `YYYY-MM`, in order."""
        return tuple(month_label(k) for k in range(month_key(self.start), month_key(self.end) + 1))

    def is_whole_years(self) -> bool:
        """True if the period runs from a 1 January to a 31 December."""
        return (self.start.month, self.start.day, self.end.month, self.end.day) == (1, 1, 12, 31)

    def default_tree(self) -> TreeVersion:
        """The tree in force on the period's last day: a report's default tree."""
        return tree_in_force(self.end)

    def calendar_bucket(self) -> int | None:
        """The key of the one calendar year, half, quarter, month or day this period is, if any."""
        if self.start == self.end:
            return self.start.toordinal()
        if self.start.day != 1 or self.end != _month_end(self.end) or self.start.year != self.end.year:
            return None
        months = self.end.month - self.start.month + 1
        first = self.start.month - 1
        for size, key in ((12, self.start.year), (6, half_key(self.start)), (3, quarter_key(self.start))):
            if months == size and first % size == 0:
                return key
        return month_key(self.start) if months == 1 else None

    def spans(self) -> Spans:
        """Whole years, then whole months, then single days: disjoint, covering the period."""
        years: list[int] = []
        months: list[int] = []
        days: list[int] = []
        cursor = self.start
        while cursor <= self.end:
            year_end, month_end = date(cursor.year, 12, 31), _month_end(cursor)
            if (cursor.month, cursor.day) == (1, 1) and year_end <= self.end:
                years.append(cursor.year)
                cursor = year_end
            elif cursor.day == 1 and month_end <= self.end:
                months.append(month_key(cursor))
                cursor = month_end
            else:
                days.append(cursor.toordinal())
            cursor += timedelta(days=1)
        return Spans(tuple(years), tuple(months), tuple(days))


def parse_period(text: str) -> Period:
    """The period named by `text`; PeriodError with a human detail otherwise."""
    if len(text) > _MAX_TEXT:
        raise PeriodError(f"period is longer than {_MAX_TEXT} characters")
    left, sep, right = text.partition("..")
    if not sep:
        start, end, _ = _single(text)
        return Period(start, end, _normalise(text))
    first, _, first_form = _single(left)
    _, last, last_form = _single(right)
    if first_form != last_form:
        raise PeriodError(
            f"{text!r}: both ends of a range must have the same form ({first_form} vs {last_form})"
        )
    if last < first:
        raise PeriodError(f"{text!r}: the range ends before it starts")
    return Period(first, last, f"{_normalise(left)}..{_normalise(right)}")


def _single(text: str) -> tuple[date, date, str]:
    """(first day, last day, form) of one non-range period."""
    match = _SINGLE.fullmatch(text)
    if match is None:
        raise PeriodError(
            f"{text!r} is not a period: use 2024, 2024-H1, 2024-Q2, 2024-05, 2024-05-15 or A..B"
        )
    year_text, letter, number, month_text, day_text = match.groups()
    year = int(year_text)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"year {year} is outside {MIN_YEAR}..{MAX_YEAR}")
    if letter is not None:
        return _part(year, letter.upper(), int(number))
    if month_text is None:
        return date(year, 1, 1), date(year, 12, 31), "year"
    month = int(month_text)
    if not 1 <= month <= 12:
        raise PeriodError(f"{text!r}: month {month_text} is not 01..12")
    if day_text is None:
        first = date(year, month, 1)
        return first, _month_end(first), "month"
    try:
        day = date(year, month, int(day_text))
    except ValueError:
        raise PeriodError(f"{text!r} is not a calendar day") from None
    return day, day, "day"


def _part(year: int, letter: str, number: int) -> tuple[date, date, str]:
    """A half (H1, H2) or a quarter (Q1..Q4) of a year."""
    size, count, form = (6, 2, "half") if letter == "H" else (3, 4, "quarter")
    if not 1 <= number <= count:
        raise PeriodError(f"{year}-{letter}{number}: a {form} is {letter}1..{letter}{count}")
    first = date(year, (number - 1) * size + 1, 1)
    return first, _month_end(date(year, number * size, 1)), form


def _month_end(day: date) -> date:
    return date(day.year, day.month, monthrange(day.year, day.month)[1])


def _normalise(text: str) -> str:
    return text.upper()


def _check_bounds(start: date, end: date, label: str) -> None:
    if not (start.year >= MIN_YEAR and end.year <= MAX_YEAR):
        raise PeriodError(f"{label}: years must lie in {MIN_YEAR}..{MAX_YEAR}")
    if end < start:
        raise PeriodError(f"{label}: the range ends before it starts")
