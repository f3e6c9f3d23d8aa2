"""The `CrossWalk` of the official trees: where a unit of one tree certainly lies in the other.

Built from `OrgTrees` (its legacy->2025 crosswalk). Rules, chosen for certainty:
- legacy commune / island district mapped whole [không bị chia tách] -> its 2025 commune;
- any other legacy unit (divided commune, crosswalk exception, district, province)
  -> the 2025 province its legacy province became (provinces merged whole in 2025,
  so every part of the unit lies there);
- any 2025 unit -> the legacy provinces that merged into its 2025 province: one
  for the unchanged provinces (e.g. `P22` Quảng Ninh), several otherwise (so the
  anchor is `VN`). Merged 2025 communes are not traced back to legacy districts:
  a divided legacy ward may have lent them land, and that is not in the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.orgtree import OrgTrees, TreeVersion


class OrgTreesCrossWalk:
    """`CrossWalk` over `OrgTrees`; immutable, built once per process (~10 ms)."""

    __slots__ = ("_legacy_provinces_of", "_successor", "_trees")

    def __init__(self, trees: OrgTrees) -> None:
        self._trees = trees
        successors: dict[str, set[str]] = {}
        for old_id, new_id in trees.crosswalk.items():
            old_province = trees.legacy.province_of(old_id)
            successors.setdefault(old_province, set()).add(trees.v2025.province_of(new_id))
        # A legacy province is traced only if all its mapped units agree on one successor.
        self._successor: Mapping[str, str] = MappingProxyType(
            {old: next(iter(new)) for old, new in successors.items() if len(new) == 1}
        )
        predecessors: dict[str, set[str]] = {}
        for old, new in self._successor.items():
            predecessors.setdefault(new, set()).add(old)
        self._legacy_provinces_of: Mapping[str, frozenset[str]] = MappingProxyType(
            {new: frozenset(olds) for new, olds in predecessors.items()}
        )

    def containers(self, from_tree: TreeVersion, unit_id: str, /) -> frozenset[str]:
        if from_tree == "legacy":
            return self._from_legacy(unit_id)
        if unit_id not in self._trees.v2025 or unit_id == "VN":
            return frozenset()
        return self._legacy_provinces_of.get(self._trees.v2025.province_of(unit_id), frozenset())

    def successor_province(self, legacy_province_id: str) -> str | None:
        """The 2025 province a legacy province merged into (`P10` Lào Cai -> `P15`)."""
        return self._successor.get(legacy_province_id)

    def _from_legacy(self, unit_id: str) -> frozenset[str]:
        if unit_id not in self._trees.legacy or unit_id == "VN":
            return frozenset()
        whole = self._trees.to_2025(unit_id)
        if whole is not None and unit_id not in self._trees.divided:
            return frozenset({whole})
        province = self._successor.get(self._trees.legacy.province_of(unit_id))
        return frozenset() if province is None else frozenset({province})
