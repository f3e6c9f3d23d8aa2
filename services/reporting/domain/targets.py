"""Targets [chỉ tiêu] and attainment [tỷ lệ đạt].

A target is keyed by (unit, tree, year, metric, category, kind) with kind
`resolution` [chỉ tiêu Nghị quyết, self-set] or `assigned` [chỉ tiêu cấp trên giao].
For one key the target with the latest `time` wins; equal times are settled by the
larger `event_id`, so every replica agrees whatever order they arrive in.

A report's target for a kind is the sum of that kind's targets over the years
its period touches (`Period.years()`): a quarter is measured against its year's
target, a party term against the sum of its years. Years without a target add
nothing; with no target in any year the kind is absent. `attainment_pct` is
value / target x 100, rounded half-up to 2 decimals, as a string; None when the
target is 0 (or absent).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from shared.orgtree import TreeVersion

TargetKind = Literal["resolution", "assigned"]
TARGET_KINDS: tuple[TargetKind, ...] = ("resolution", "assigned")

TargetKey = tuple[str, TreeVersion, int, str, str, TargetKind]
"""(unit_id, tree, year, metric, category, kind)"""


@dataclass(frozen=True, slots=True)
class Target:
    unit_id: str
    tree: TreeVersion
    year: int
    kind: TargetKind
    value: int
    time: datetime
    metric: str = "admitted"
    category: str = "all"
    event_id: str = ""

    @property
    def key(self) -> TargetKey:
        return (self.unit_id, self.tree, self.year, self.metric, self.category, self.kind)

    def supersedes(self, other: Target) -> bool:
        """Latest `time` wins; equal times: the larger `event_id`."""
        return (self.time, self.event_id) > (other.time, other.event_id)


@dataclass(frozen=True, slots=True)
class Attainment:
    """One kind's target for the period and how far the value reached it."""

    value: int
    attainment_pct: str | None


def attainment_pct(value: int, target: int | None) -> str | None:
    """value / target x 100, half-up to 2 decimals: (9, 7) -> '128.57'; None if no target or 0.

    Exact: integer arithmetic, then a Decimal for the text (no float, no
    28-digit Decimal context rounding before the half-up step).
    """
    if not target:
        return None
    numerator, denominator = abs(value) * 10_000, abs(target)
    hundredths = (2 * numerator + denominator) // (2 * denominator)  # half-up, away from zero
    sign = -1 if (value < 0) != (target < 0) else 1
    return str(Decimal(sign * hundredths).scaleb(-2))


class TargetBook:
    """The winning target per key (an in-memory read model; `set` is idempotent)."""

    __slots__ = ("_targets",)

    def __init__(self, targets: Iterable[Target] = ()) -> None:
        self._targets: dict[TargetKey, Target] = {}
        for target in targets:
            self.set(target)

    def set(self, target: Target) -> bool:
        """Keep `target` if it supersedes the one held; True if it did."""
        held = self._targets.get(target.key)
        if held is not None and not target.supersedes(held):
            return False
        self._targets[target.key] = target
        return True

    def get(self, key: TargetKey) -> Target | None:
        return self._targets.get(key)

    def total(
        self,
        unit_id: str,
        tree: TreeVersion,
        years: Iterable[int],
        metric: str,
        category: str,
        kind: TargetKind,
    ) -> int | None:
        """Sum of the kind's targets over `years`; None if no year has one."""
        found = [self._targets.get((unit_id, tree, year, metric, category, kind)) for year in years]
        values = [t.value for t in found if t is not None]
        return sum(values) if values else None

    def attainments(
        self, unit_id: str, tree: TreeVersion, years: Iterable[int], metric: str, category: str, achieved: int
    ) -> dict[TargetKind, Attainment]:
        """The report's `targets` object: one entry per kind that has a target."""
        years = tuple(years)
        result: dict[TargetKind, Attainment] = {}
        for kind in TARGET_KINDS:
            total = self.total(unit_id, tree, years, metric, category, kind)
            if total is not None:
                result[kind] = Attainment(total, attainment_pct(achieved, total))
        return result
