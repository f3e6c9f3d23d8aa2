"""Which tree and which unit a tally belongs to, and which branches are lagging.

Trees. An event is attributed through the tree in force on its local date
(`attributed_tree`: `legacy` up to 2025-06-30, `2025` from 2025-07-01). A report
uses the tree in force on its period's last day unless asked otherwise
(`report_tree`). A target without a tree means the tree in force on its event's
local date (`target_tree`), the contract's rule for every event, which the intake
and the quota apply too: one `target.set` is one target in all three services.

Placement [vị trí của chi bộ] of a branch in an asked tree T (`place_branch`):
1. its registration names a parent known in T: the branch is a child of that unit
   (a commune, or an island district [huyện đảo] in legacy); `mapped`;
2. otherwise it has no place in T, and is `unmapped` at exactly ONE unit, its
   anchor: the deepest unit of T that certainly contains it, found through its
   parent in the other tree and the `CrossWalk` (climbing that parent's ancestors
   until one has a known container); `VN` when nothing is known, in particular
   for a branch whose registration has not arrived yet.
The branch's counts are added to the anchor and every ancestor of it, and to
`unmapped` of the anchor only. Hence for every unit U:
    value(U) = Σ value(children of U) + unmapped(U)
(a child is a child unit or a branch registered directly under U), and `VN`
always holds every count. Counting unmapped at several levels would count it
twice in its ancestors' sums; that is why it lives at the anchor alone.
Placement uses the branch's latest registration for its whole history: asking
a 2024 report in tree `2025` restates it in today's units.

Lagging [chi bộ nhiều năm không kết nạp được đảng viên]: see `lagging`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from services.reporting.domain.orgview import (
    NATIONAL_ID,
    TREE_VERSIONS,
    CrossWalk,
    TreesView,
    TreeView,
    chain,
    lowest_common_ancestor,
    other_tree,
)
from services.reporting.domain.periods import Period
from shared.orgtree import TreeVersion, local_date, tree_in_force


class InvalidTreeError(ValueError):
    """A `tree=` that is neither `legacy` nor `2025` (code `invalid_tree`)."""

    def __init__(self, asked: str) -> None:
        self.code = "invalid_tree"
        self.detail = f"tree must be legacy or 2025, not {asked!r}"
        super().__init__(self.detail)


def attributed_tree(day: date) -> TreeVersion:
    """The tree an event of this local date is attributed through."""
    return tree_in_force(day)


def report_tree(period: Period, asked: str | None = None) -> TreeVersion:
    """The asked tree, or the one in force on the period's last day."""
    if asked is None:
        return period.default_tree()
    for version in TREE_VERSIONS:
        if asked == version:
            return version
    raise InvalidTreeError(asked)


def target_tree(sent: datetime, tree: TreeVersion | None = None) -> TreeVersion:
    """A target's tree: as given, else the tree in force on the local date its event was sent."""
    return tree if tree is not None else tree_in_force(local_date(sent))


@dataclass(frozen=True, slots=True)
class BranchRegistration:
    """A branch [chi bộ] and its parent unit in each tree it belongs to (at least one)."""

    branch_id: str
    legacy_parent: str | None = None
    parent_2025: str | None = None
    name: str = ""
    kind: str = "other"

    @classmethod
    def of(
        cls, branch_id: str, parents: Mapping[str, str], name: str = "", kind: str = "other"
    ) -> BranchRegistration:
        """From the event's `parents` object, e.g. `{"legacy": "C06901", "2025": "C06913"}`."""
        return cls(branch_id, parents.get("legacy"), parents.get("2025"), name, kind)

    def parent_in(self, tree: TreeVersion) -> str | None:
        return self.legacy_parent if tree == "legacy" else self.parent_2025


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a branch's counts go in one tree: `chain` from its anchor up to `VN`.

    `mapped`: the anchor is the branch's registered parent (the branch is a child
    of it); otherwise the counts are `unmapped` at the anchor.
    """

    branch_id: str
    tree: TreeVersion
    chain: tuple[str, ...]
    mapped: bool

    @property
    def anchor(self) -> str:
        return self.chain[0]


def place_branch(
    trees: TreesView,
    tree: TreeVersion,
    branch_id: str,
    registration: BranchRegistration | None,
    crosswalk: CrossWalk | None = None,
) -> Placement:
    """The branch's placement in `tree` (rules in the module docstring)."""
    asked = trees[tree]
    parent = registration.parent_in(tree) if registration is not None else None
    if parent is not None and asked.get(parent) is not None:
        return Placement(branch_id, tree, chain(asked, parent), mapped=True)
    anchor = NATIONAL_ID
    if registration is not None and crosswalk is not None:
        anchor = _anchor_via_other_tree(trees, tree, registration, crosswalk)
    return Placement(branch_id, tree, chain(asked, anchor), mapped=False)


def _anchor_via_other_tree(
    trees: TreesView, tree: TreeVersion, registration: BranchRegistration, crosswalk: CrossWalk
) -> str:
    """The deepest unit of `tree` certainly containing the branch's parent in the other tree."""
    source_tree = other_tree(tree)
    source: TreeView = trees[source_tree]
    parent = registration.parent_in(source_tree)
    if parent is None or source.get(parent) is None:
        return NATIONAL_ID
    asked = trees[tree]
    for unit_id in chain(source, parent):
        known = [c for c in crosswalk.containers(source_tree, unit_id) if asked.get(c) is not None]
        if known:
            return lowest_common_ancestor(asked, known)
    return NATIONAL_ID


@dataclass(frozen=True, slots=True)
class LaggingBranch:
    branch_id: str
    last_admission: date | None


def lagging_years(today: date, count: int) -> tuple[int, ...]:
    """The last `count` full years before today's year: 2026, 3 -> (2023, 2024, 2025)."""
    if count < 1:
        raise ValueError(f"years must be at least 1, not {count}")
    return tuple(range(today.year - count, today.year))


def lagging(
    branches: Iterable[str], last_admission_by_branch: Mapping[str, date], years: Sequence[int]
) -> list[LaggingBranch]:
    """Branches with no admission [kết nạp] in any of `years` (consecutive full years).

    `last_admission_by_branch` must give each branch's latest admission ON OR BEFORE
    31 December of the last of `years` (absent: never admitted): an admission in the
    current, unfinished year does not clear a branch that admitted nobody in the
    full years, and a later date is refused (ValueError) rather than misread.
    Ordered: never admitted first, then the longest since, then by id.
    """
    if not years:
        raise ValueError("lagging needs at least one year")
    first, window_end = date(min(years), 1, 1), date(max(years), 12, 31)
    found: list[LaggingBranch] = []
    for branch_id in branches:
        last = last_admission_by_branch.get(branch_id)
        if last is not None and last > window_end:
            raise ValueError(f"{branch_id}: last admission {last} is after the window end {window_end}")
        if last is None or last < first:
            found.append(LaggingBranch(branch_id, last))
    return sorted(found, key=_lagging_order)


def _lagging_order(branch: LaggingBranch) -> tuple[bool, date, str]:
    return (branch.last_admission is not None, branch.last_admission or date.min, branch.branch_id)
