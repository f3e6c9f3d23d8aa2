"""Per-batch aggregate deltas: every key touched once per batch, whatever the batch holds.

A count change of one branch adds ``delta`` to each unit of its chain in each tree
(monthly row, and daily row where the unit keeps days) and, when the branch is
unmapped, to the anchor's ``unmapped`` part. Summing here first means a national
replay touches the ``VN`` and province rows once per batch, not once per change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from services.reporting.bulk import Row
from services.reporting.placing import Plan
from services.reporting.tables import ACTIVITY_PLACES, MONTH_COLUMNS, TOTAL, UNMAPPED

BucketKey = tuple[int, int, int]
"""(series, bucket, part): one row per unit (a row key, both trees) under it"""


def month_of(ordinal: int) -> int:
    """The domain's ``month_key`` of a day ordinal."""
    day = date.fromordinal(ordinal)
    return day.year * 12 + day.month - 1


def _sums() -> defaultdict[BucketKey, defaultdict[int, int]]:
    return defaultdict(lambda: defaultdict(int))


@dataclass
class Deltas:
    """Sums of deltas by aggregate key, and the (tree, region, month) the rollups feed must rebuild.

    Sums are kept per (series, bucket, part), then per unit row key: a change adds to the
    ~3 units of its chain under one key of each table, so the per-unit adds hash an
    integer, not a five-field tuple (half the fold's Python time went to those tuples).
    A region is the province of the anchor (``VN`` for anchors above provinces): the
    publisher rebuilds that province's documents and ``VN``'s for the month.
    """

    months: defaultdict[BucketKey, defaultdict[int, int]] = field(default_factory=_sums)
    days: defaultdict[BucketKey, defaultdict[int, int]] = field(default_factory=_sums)
    branches: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    dirty: set[tuple[str, str, int]] = field(default_factory=set)
    _months_of: dict[int, int] = field(default_factory=dict)

    def month(self, ordinal: int) -> int:
        found = self._months_of.get(ordinal)
        if found is None:
            found = self._months_of[ordinal] = month_of(ordinal)
        return found

    def add(self, plan: Plan, mapped: bool, series: int, ordinal: int, delta: int) -> None:
        """``delta`` on one (branch, day, series) through the branch's plan in one tree."""
        month = self.month(ordinal)
        per_unit = self.months[(series, month, TOTAL)]
        for unit in plan.months:
            per_unit[unit] += delta
        per_unit = self.days[(series, ordinal, TOTAL)]
        for unit in plan.days:
            per_unit[unit] += delta
        if not mapped:
            if plan.anchor_months:
                self.months[(series, month, UNMAPPED)][plan.anchor_key] += delta
            if plan.anchor_days:
                self.days[(series, ordinal, UNMAPPED)][plan.anchor_key] += delta
        self.dirty.add((plan.tree, plan.region, month))

    def count_branch(self, plan: Plan, step: int) -> None:
        """A branch joins (+1) or leaves (-1) every unit of the chain."""
        for unit_id in plan.chain:
            self.branches[(plan.tree, unit_id)] += step

    def month_rows(self) -> list[Row]:
        return _rows(self.months)

    def day_rows(self) -> list[Row]:
        return _rows(self.days)

    def branch_rows(self) -> list[Row]:
        return [(*key, n) for key, n in self.branches.items() if n]

    def dirty_rows(self) -> list[Row]:
        return list(self.dirty)


def _rows(sums: dict[BucketKey, defaultdict[int, int]]) -> list[Row]:
    """(unit, series, bucket, part, value) for every non-zero sum."""
    return [
        (unit, series, bucket, part, value)
        for (series, bucket, part), per_unit in sums.items()
        for unit, value in per_unit.items()
        if value
    ]


@dataclass
class ActivityMasks:
    """Day bits to set or clear per (branch, year): bit ``d - 1`` of column ``mMM``."""

    set_bits: defaultdict[tuple[str, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * 12)
    )
    clear_bits: defaultdict[tuple[str, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * 12)
    )

    _bits_of: dict[int, tuple[int, int, int]] = field(default_factory=dict)

    def mark(self, branch_id: str, ordinal: int, active: bool) -> None:
        found = self._bits_of.get(ordinal)
        if found is None:
            day = date.fromordinal(ordinal)
            found = self._bits_of[ordinal] = (day.year, day.month - 1, 1 << (day.day - 1))
        year, month, bit = found
        (self.set_bits if active else self.clear_bits)[(branch_id, year)][month] |= bit

    def set_rows(self, places: Callable[[str], Row]) -> list[Row]:
        """Rows of ``ACTIVITY_COLUMNS``; ``places`` gives a branch's ``ACTIVITY_PLACES`` values."""
        return [
            (branch_id, year, *masks, *places(branch_id))
            for (branch_id, year), masks in self.set_bits.items()
        ]

    def years(self) -> list[int]:
        """Years whose activity rows change (their generation must rise)."""
        return sorted({year for _, year in (*self.set_bits, *self.clear_bits)})

    def clear_rows(self) -> list[Row]:
        return [(branch_id, year, *masks) for (branch_id, year), masks in self.clear_bits.items()]


ACTIVITY_COLUMNS = ("branch_id", "year", *MONTH_COLUMNS, *ACTIVITY_PLACES)
