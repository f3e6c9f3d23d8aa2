"""What the reporting core needs of an org tree, as small Protocols.

`shared.orgtree.OrgTree` / `OrgTrees` satisfy these structurally; unit tests pass
tiny fakes. Only three lookups are used: `get`, `ancestors` (nearest first, `VN`
last) and `children` (sorted, zeros are shown for each). A `CrossWalk` says where a
unit of one tree lies in the other (see `services.reporting.domain.crosswalk`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shared.orgtree import TreeVersion

NATIONAL_ID = "VN"
TREE_VERSIONS: tuple[TreeVersion, ...] = ("legacy", "2025")


class UnitView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...


class TreeView(Protocol):
    """One tree version rooted at `VN`."""

    def get(self, unit_id: str, /) -> UnitView | None: ...
    def ancestors(self, unit_id: str, /) -> tuple[UnitView, ...]: ...
    def children(self, unit_id: str, /) -> tuple[UnitView, ...]: ...


class TreesView(Protocol):
    """Both versions by name (`OrgTrees`, or a plain dict in tests)."""

    def __getitem__(self, version: TreeVersion, /) -> TreeView: ...


class CrossWalk(Protocol):
    """Where a unit of `from_tree` lies in the other tree.

    `containers` returns ids of the other tree whose union certainly contains the
    unit's whole territory (one commune, a province, several provinces...), or an
    empty set when that is not known. Certainty matters more than depth: a wrong
    container would put counts under the wrong unit.
    """

    def containers(self, from_tree: TreeVersion, unit_id: str, /) -> frozenset[str]: ...


def other_tree(tree: TreeVersion) -> TreeVersion:
    return "2025" if tree == "legacy" else "legacy"


def chain(tree: TreeView, unit_id: str) -> tuple[str, ...]:
    """The unit's id then its ancestors' ids, nearest first, ending with `VN`."""
    return (unit_id, *(unit.id for unit in tree.ancestors(unit_id)))


def lowest_common_ancestor(tree: TreeView, unit_ids: Iterable[str]) -> str:
    """The deepest unit containing all `unit_ids` (known ones); `VN` if none is known."""
    common: tuple[str, ...] | None = None
    for unit_id in unit_ids:
        if tree.get(unit_id) is None:
            continue
        path = tuple(reversed(chain(tree, unit_id)))
        common = path if common is None else _common_prefix(common, path)
    return common[-1] if common else NATIONAL_ID


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return a[:size]
