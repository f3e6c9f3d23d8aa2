"""What to generate: seed, share of the country, years and the moment nothing may pass."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from ketnap.generate import clock

_YEARS = re.compile(r"^\s*(\d{4})\s*(?:(?:-|\.\.)\s*(\d{4}))?\s*$")


def parse_years(text: str) -> tuple[int, int]:
    """``"2020-2026"``, ``"2020..2026"`` or ``"2024"`` -> (first, last); ValueError otherwise."""
    match = _YEARS.match(text)
    if match is None:
        raise ValueError(f"years must look like 2020-2026 or 2024, not {text!r}")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if not 2001 <= first <= last <= 2099:
        raise ValueError(f"years {text!r}: need 2001 <= first <= last <= 2099")
    return first, last


def parse_now(text: str | None, default: datetime) -> datetime:
    """``--now``: an ISO date (00:00 that day in Vietnam) or date-time (naive means Vietnamese)."""
    if text is None:
        return default
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as bad:
        raise ValueError(f"now {text!r}: not an ISO date or date-time") from bad
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=clock.VN_OFFSET)


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """One feed. Invariants: 0 < scale <= 1, first_year <= last_year, ``now`` is aware.

    Valid events are dated up to ``cutoff``: the end of ``last_year`` or ``now``,
    whichever comes first. Candidate events may start in the year before
    ``first_year``: the earlier milestones of candidates still in the pipeline
    on 1 January of ``first_year``.
    """

    now: datetime
    seed: int = 1
    scale: float = 1.0
    first_year: int = 2020
    last_year: int = 2026
    mess: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], not {self.scale}")
        if self.first_year > self.last_year:
            raise ValueError("first_year is after last_year")
        clock.from_datetime(self.now)  # refuses a naive datetime

    @property
    def years(self) -> range:
        return range(self.first_year, self.last_year + 1)

    @property
    def start(self) -> int:
        """When the simulation starts sourcing candidates: a warm-up year early."""
        return clock.at(date(self.first_year - 1, 1, 1))

    @property
    def begin(self) -> int:
        """00:00 on 1 January of ``first_year``."""
        return clock.year_start(self.first_year)

    @property
    def cutoff(self) -> int:
        """The last minute a valid event may carry."""
        return min(clock.from_datetime(self.now), clock.year_start(self.last_year + 1) - 1)
