"""The generator's clock: an instant is an ``int`` of minutes since 2000-01-01 00:00 Vietnam time.

Vietnam keeps UTC+07:00 all year (no DST), so local minutes map one-to-one to
instants and every event time is written with the ``+07:00`` offset. Day
indexes (``moment // MINUTES_PER_DAY``) are local calendar days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import cache
from typing import Final

VN_OFFSET: Final = timezone(timedelta(hours=7))
EPOCH: Final = date(2000, 1, 1)
MINUTES_PER_DAY: Final = 1440
_EPOCH_ORDINAL: Final = EPOCH.toordinal()
_EPOCH_WEEKDAY: Final = EPOCH.weekday()


def day_index(day: date) -> int:
    """Days from 2000-01-01 to ``day``."""
    return day.toordinal() - _EPOCH_ORDINAL


@cache
def day_of(index: int) -> date:
    """The local calendar date of a day index."""
    return date.fromordinal(_EPOCH_ORDINAL + index)


@cache
def _day_text(index: int) -> str:
    return day_of(index).isoformat()


@cache
def quarter_of(index: int) -> int:
    """``year * 4 + quarter`` (quarter 0-3) of a day index."""
    day = day_of(index)
    return day.year * 4 + (day.month - 1) // 3


def weekday(index: int) -> int:
    """Monday 0 .. Sunday 6, as ``date.weekday``."""
    return (index + _EPOCH_WEEKDAY) % 7


def off_sunday(moment: int) -> int:
    """The same time on Saturday if ``moment`` falls on a Sunday: offices decide on working days."""
    return moment - MINUTES_PER_DAY if weekday(moment // MINUTES_PER_DAY) == 6 else moment


def at(day: date, minute_of_day: int = 0) -> int:
    """The instant ``minute_of_day`` minutes after local midnight of ``day``."""
    return day_index(day) * MINUTES_PER_DAY + minute_of_day


def year_start(year: int) -> int:
    """00:00 local on 1 January."""
    return at(date(year, 1, 1))


def year_of(moment: int) -> int:
    return day_of(moment // MINUTES_PER_DAY).year


def from_datetime(when: datetime) -> int:
    """An aware datetime as local minutes (seconds dropped); ValueError if naive."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("the generator needs an aware datetime")
    local = when.astimezone(VN_OFFSET)
    return at(local.date(), local.hour * 60 + local.minute)


def iso(moment: int) -> str:
    """RFC 3339 with the Vietnamese offset, e.g. ``2024-05-12T09:05:00+07:00``."""
    day, minute = divmod(moment, MINUTES_PER_DAY)
    return f"{_day_text(day)}T{minute // 60:02d}:{minute % 60:02d}:00+07:00"
