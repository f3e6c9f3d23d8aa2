"""Rollup arithmetic [tổng hợp số liệu]: branch counts of one period up the asked tree.

`rollup(tree, placements, counts, active)` is the reference computation: given each
branch's count for one (period, metric, category), already summed over the period,
and its `Placement` in the asked tree, it gives every unit's
- `value`: the sum of the counts of every branch whose chain passes the unit;
- `unmapped`: the counts of branches with no place in the tree anchored at it;
- `children`: every child unit of the tree (zeros included, in the tree's order)
  then every branch registered directly under the unit (zeros included, by id);
- `reporting`: `branches` whose chain passes the unit (mapped or not, so it adds
  up like `value`), and of those `branches_with_events` (the `active` ones).
Invariant, for every unit U: `value(U) == Σ children values + unmapped(U)`, and
`value(VN)` is the sum of all counts. `RollupIndex` (services.reporting.domain.index)
keeps the same numbers incrementally; tests check one against the other.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from services.reporting.domain.attribution import Placement
from services.reporting.domain.orgview import TreeView
from services.reporting.domain.targets import attainment_pct

__all__ = ["Child", "Reporting", "RollupTable", "UnitRollup", "attainment_pct", "rollup"]

BRANCH_LEVEL = "branch"


class UnknownUnitError(LookupError):
    """A unit id the asked tree does not have (code `unknown_unit`)."""

    def __init__(self, unit_id: str, tree: str) -> None:
        self.code = "unknown_unit"
        self.detail = f"{unit_id!r} is not a unit of the {tree} tree"
        super().__init__(self.detail)


@dataclass(frozen=True, slots=True)
class Child:
    """One line of `children`: a unit of the tree, or a branch (level `branch`)."""

    id: str
    name: str
    level: str
    value: int


@dataclass(frozen=True, slots=True)
class Reporting:
    branches: int
    branches_with_events: int


@dataclass(frozen=True, slots=True)
class UnitRollup:
    """One unit's numbers for one (tree, period, metric, category)."""

    unit_id: str
    name: str
    level: str
    value: int
    unmapped: int
    children: tuple[Child, ...]
    reporting: Reporting


@dataclass(frozen=True, slots=True)
class RollupTable:
    """Every unit's numbers at once; `unit()` assembles one unit's answer."""

    tree: TreeView
    value: Mapping[str, int]
    unmapped: Mapping[str, int]
    direct: Mapping[str, tuple[str, ...]]
    counts: Mapping[str, int]
    branches: Mapping[str, int]
    with_events: Mapping[str, int]
    names: Mapping[str, str] = field(default_factory=dict)

    def unit(self, unit_id: str) -> UnitRollup:
        unit = self.tree.get(unit_id)
        if unit is None:
            raise UnknownUnitError(unit_id, str(getattr(self.tree, "version", "asked")))
        children = [
            Child(c.id, c.name, c.level, self.value.get(c.id, 0)) for c in self.tree.children(unit_id)
        ]
        children += [
            Child(b, self.names.get(b, ""), BRANCH_LEVEL, self.counts.get(b, 0))
            for b in self.direct.get(unit_id, ())
        ]
        return UnitRollup(
            unit_id,
            unit.name,
            unit.level,
            self.value.get(unit_id, 0),
            self.unmapped.get(unit_id, 0),
            tuple(children),
            Reporting(self.branches.get(unit_id, 0), self.with_events.get(unit_id, 0)),
        )


def rollup(
    tree: TreeView,
    placements: Iterable[Placement],
    counts: Mapping[str, int],
    active: Collection[str] = frozenset(),
    names: Mapping[str, str] | None = None,
) -> RollupTable:
    """Roll branch counts up `tree` (rules in the module docstring); O(branches x depth).

    Every branch in `counts` needs a placement (ValueError otherwise: nothing is
    dropped silently); an unregistered branch is placed at `VN`, unmapped.
    """
    value: Counter[str] = Counter()
    unmapped: Counter[str] = Counter()
    branches: Counter[str] = Counter()
    with_events: Counter[str] = Counter()
    direct: defaultdict[str, list[str]] = defaultdict(list)
    branches_seen: set[str] = set()
    for placement in placements:
        branches_seen.add(placement.branch_id)
        count = counts.get(placement.branch_id, 0)
        is_active = placement.branch_id in active
        for unit_id in placement.chain:
            value[unit_id] += count
            branches[unit_id] += 1
            with_events[unit_id] += is_active
        if placement.mapped:
            direct[placement.anchor].append(placement.branch_id)
        else:
            unmapped[placement.anchor] += count
    if missing := set(counts) - set(branches_seen):
        raise ValueError(f"counts for branches with no placement: {sorted(missing)[:5]}")
    return RollupTable(
        tree,
        value,
        unmapped,
        {unit_id: tuple(sorted(ids)) for unit_id, ids in direct.items()},
        counts,
        branches,
        with_events,
        names or {},
    )
