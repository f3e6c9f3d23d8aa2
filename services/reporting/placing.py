"""Where a branch's counts go in each tree, as columns and plans the storage can use.

The rule is the domain's (`place_branch`: mapped under the registered parent, else
unmapped at one certain anchor). Here it becomes:
- a `PlacementRow` (anchor, mapped, the district and province on its chain),
  stored on the branch's row, so "branches under a unit" is one indexed filter;
- a `Plan`: the chain's units that keep monthly rows (and which keep daily rows),
  cached per (tree, anchor): there are ~14k anchors, not 100k branches.

What is stored per unit (docs/reporting.md, "Storage"): monthly and daily rows
for every unit except a commune under a district (a district has at most ~50
communes of ~10 branches: cheap to sum from their tallies). A province's children
over a date range are then ~24 monthly and ~60 daily rows each, not the tallies of
thousands of branches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, NamedTuple

from services.reporting.domain import BranchRegistration, OrgTreesCrossWalk, place_branch
from services.reporting.unitkeys import unit_key, unit_of
from shared.orgtree import OrgTrees, TreeVersion, Unit

TREES: Final[tuple[TreeVersion, ...]] = ("legacy", "2025")
NATIONAL: Final = "VN"


class PlacementRow(NamedTuple):
    """One branch's place in one tree (columns ``*_<tree>`` of ``reporting_branches``).

    A named tuple: the fold builds two per branch of every batch, in a fifth of a
    frozen dataclass's time.
    """

    tree: TreeVersion
    branch_id: str
    anchor: str
    mapped: bool
    district_id: str | None
    province_id: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    """What one count at `anchor` updates: the units (row keys, :mod:`unitkeys`) with monthly
    and with daily rows, and the `region` to mark dirty."""

    tree: TreeVersion
    anchor: str
    anchor_key: int
    chain: tuple[str, ...]
    months: tuple[int, ...]
    days: tuple[int, ...]
    region: str
    anchor_months: bool
    anchor_days: bool


def columns(tree: TreeVersion) -> dict[str, str]:
    """The placement columns of `tree` on ``reporting_branches`` (no district in 2025)."""
    return {
        "anchor": f"anchor_{tree}",
        "mapped": f"mapped_{tree}",
        "district": "district_legacy" if tree == "legacy" else "NULL",
        "province": f"province_{tree}",
    }


class Placer:
    """Placements and plans over the official trees; pure and cached."""

    def __init__(self, trees: OrgTrees) -> None:
        self.trees = trees
        self.crosswalk = OrgTreesCrossWalk(trees)
        self.plan: Callable[[TreeVersion, str], Plan] = lru_cache(maxsize=None)(self._plan)
        self.is_shared: Callable[[int], bool] = lru_cache(maxsize=None)(self._is_shared)
        self.region: Callable[[TreeVersion, str], str] = lru_cache(maxsize=None)(self._region)

    def place(
        self, tree: TreeVersion, branch_id: str, registration: BranchRegistration | None
    ) -> PlacementRow:
        """The branch's row in `tree`; an unregistered branch is unmapped at `VN`."""
        placement = place_branch(self.trees, tree, branch_id, registration, self.crosswalk)
        district, province = self._levels(tree, placement.chain)
        return PlacementRow(tree, branch_id, placement.anchor, placement.mapped, district, province)

    def unregistered(self, tree: TreeVersion, branch_id: str) -> PlacementRow:
        return PlacementRow(tree, branch_id, NATIONAL, False, None, None)

    def keeps_days(self, tree: TreeVersion, unit_id: str) -> bool:
        """Daily rows exactly where there are monthly rows: a period's edges cost what its middle does."""
        return self.keeps_months(tree, unit_id)

    def keeps_months(self, tree: TreeVersion, unit_id: str) -> bool:
        org = self.trees[tree]
        unit = org.unit(unit_id)
        if org.children(unit_id) or unit.parent_id is None:
            return True
        return org.unit(unit.parent_id).level != "district"

    def _is_shared(self, key: int) -> bool:
        """Whether every replica's folds write the rows of this unit (a row key: ``VN`` and
        the provinces: the branches under them are spread over every partition)."""
        tree, unit_id = unit_of(key)
        unit = self.trees[tree].unit(unit_id)
        return unit.parent_id is None or unit.level == "province"

    def _region(self, tree: TreeVersion, unit_id: str) -> str:
        """The province a unit lies in (itself for a province), ``VN`` above provinces: what the
        fold marks dirty and the feed rebuilds."""
        org = self.trees[tree]
        return NATIONAL if org.unit(unit_id).parent_id is None else org.province_of(unit_id)

    def is_leaf(self, tree: TreeVersion, unit_id: str) -> bool:
        return not self.trees[tree].children(unit_id)

    def _plan(self, tree: TreeVersion, anchor: str) -> Plan:
        org = self.trees[tree]
        chain: tuple[Unit, ...] = (org.unit(anchor), *org.ancestors(anchor))
        return Plan(
            tree,
            anchor,
            unit_key(tree, anchor),
            tuple(u.id for u in chain),
            tuple(unit_key(tree, u.id) for u in chain if self.keeps_months(tree, u.id)),
            tuple(unit_key(tree, u.id) for u in chain if self.keeps_days(tree, u.id)),
            self.region(tree, anchor),
            self.keeps_months(tree, anchor),
            self.keeps_days(tree, anchor),
        )

    def _levels(self, tree: TreeVersion, chain: tuple[str, ...]) -> tuple[str | None, str | None]:
        org = self.trees[tree]
        district = province = None
        for unit_id in chain:
            level = org.unit(unit_id).level
            if level == "district":
                district = unit_id
            elif level == "province":
                province = unit_id
        return district, province
