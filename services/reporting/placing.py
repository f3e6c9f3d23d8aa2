"""Where a branch's counts go in each tree, as rows and plans the storage can use.

The rule is the domain's (`place_branch`: mapped under the registered parent, else
unmapped at one certain anchor). Here it becomes:
- a `PlacementRow` (anchor, mapped, the district and province on its chain) stored
  in ``reporting_placements``, so "branches under a unit" is one indexed filter;
- a `Plan`: the chain's units with, for each, whether it keeps daily rows (units
  with child units do; a leaf's partial months are summed from its branches).
Both are cached per (tree, anchor): there are ~14k distinct anchors, not 100k.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from services.reporting.domain import BranchRegistration, OrgTreesCrossWalk, place_branch
from shared.orgtree import OrgTrees, TreeVersion

TREES: Final[tuple[TreeVersion, ...]] = ("legacy", "2025")
NATIONAL: Final = "VN"


@dataclass(frozen=True, slots=True)
class PlacementRow:
    """One branch's place in one tree (a row of ``reporting_placements``)."""

    tree: TreeVersion
    branch_id: str
    anchor: str
    mapped: bool
    district_id: str | None
    province_id: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    """The anchor's chain, nearest first: (unit_id, keeps daily rows)."""

    tree: TreeVersion
    anchor: str
    units: tuple[tuple[str, bool], ...]

    @property
    def anchor_keeps_days(self) -> bool:
        return self.units[0][1]


class Placer:
    """Placements and plans over the official trees; pure and cached."""

    def __init__(self, trees: OrgTrees) -> None:
        self.trees = trees
        self.crosswalk = OrgTreesCrossWalk(trees)
        self.plan = lru_cache(maxsize=None)(self._plan)

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
        """Units with child units keep daily rows; leaves are summed from their branches."""
        return bool(self.trees[tree].children(unit_id))

    def _plan(self, tree: TreeVersion, anchor: str) -> Plan:
        org = self.trees[tree]
        chain = (anchor, *(u.id for u in org.ancestors(anchor)))
        return Plan(tree, anchor, tuple((unit_id, self.keeps_days(tree, unit_id)) for unit_id in chain))

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
