"""The branch registry [sổ chi bộ]: where each branch belonged, over time, in each org tree.

A ``branch_registered`` event places a branch under a parent unit in one or both
trees from the event's ``time`` on; registering it again with other parents moves
it, and the earlier placements stay as its history. Invariants:

- a history is ordered by (``valid_from``, ``event_id``) and never loses a placement;
- the parent of a branch in tree ``t`` at instant ``at`` is the parent named by the
  latest placement that names tree ``t`` and is valid at ``at``; an event older
  than every such placement uses the earliest one (a branch exists before its
  registration is sent);
- attribution of an event goes through the tree in force at its local date
  (Asia/Ho_Chi_Minh). A branch that names no 2025 parent is attributed, in 2025,
  to the 2025 commune its legacy parent became (the crosswalk); a branch that
  names no legacy parent is attributed, before the reform, to its 2025 parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from shared.orgtree import OrgTrees, TreeVersion, local_date, tree_in_force


@dataclass(frozen=True, slots=True)
class Placement:
    """From ``valid_from`` on, the branch's parent in each tree it names (at least one)."""

    branch_id: str
    valid_from: datetime
    event_id: str
    legacy: str | None
    v2025: str | None

    def parent(self, tree: TreeVersion) -> str | None:
        return self.legacy if tree == "legacy" else self.v2025


@dataclass(frozen=True, slots=True)
class Attribution:
    """The unit an event is counted under and the tree that unit belongs to."""

    unit_id: str
    tree: TreeVersion


@dataclass(frozen=True, slots=True)
class BranchHistory:
    """Every placement of one branch, oldest first."""

    placements: tuple[Placement, ...]

    @classmethod
    def of(cls, placements: list[Placement]) -> BranchHistory:
        return cls(tuple(sorted(placements, key=_order)))

    def add(self, placement: Placement) -> BranchHistory:
        return BranchHistory.of([*self.placements, placement])

    @property
    def current(self) -> Placement:
        """The placement in force now: the one with the latest ``valid_from``."""
        return self.placements[-1]

    def parent(self, tree: TreeVersion, at: datetime) -> str | None:
        """The parent in ``tree`` at instant ``at`` (see the module invariants); None if never named."""
        earliest = None
        for placement in reversed(self.placements):  # newest first
            unit = placement.legacy if tree == "legacy" else placement.v2025
            if unit is None:
                continue
            if placement.valid_from <= at:
                return unit
            earliest = unit
        return earliest

    def attribution(self, at: datetime, trees: OrgTrees) -> Attribution | None:
        """Where an event of this branch dated ``at`` counts; None if the branch has no unit for it."""
        tree = tree_at(at)
        unit = self.parent(tree, at)
        if unit is not None:
            return Attribution(unit, tree)
        if tree == "2025":
            legacy = self.parent("legacy", at)
            mapped = trees.to_2025(legacy) if legacy is not None else None
            return Attribution(mapped, "2025") if mapped is not None else None
        v2025 = self.parent("2025", at)
        return Attribution(v2025, "2025") if v2025 is not None else None


@lru_cache(maxsize=1 << 14)
def tree_at(at: datetime) -> TreeVersion:
    """The tree in force at an instant's local date (memoised: batches share a few dates)."""
    return tree_in_force(local_date(at))


def _order(placement: Placement) -> tuple[datetime, str]:
    return placement.valid_from, placement.event_id
