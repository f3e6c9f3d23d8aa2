"""The org tree: administrative units of one tree version, and the pair of versions.

Invariants of an `OrgTree` (checked when it is built):
- exactly one root, `VN` (level `national`, no parent);
- ids are unique; every other unit's parent is in the same tree, one level up or
  more (legacy: commune < district [huyện] < province [tỉnh]; 2025: commune < province);
- every unit carries the tree's version.
Invariants of `OrgTrees`: each crosswalk entry goes from an attachable legacy unit
to a 2025 commune, and no legacy unit is both mapped and an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from shared.orgtree.dates import TreeVersion

Level = Literal["national", "province", "district", "commune"]

LEVELS: tuple[Level, ...] = ("national", "province", "district", "commune")
_DEPTH: Mapping[Level, int] = MappingProxyType({level: depth for depth, level in enumerate(LEVELS)})
ROOT_ID = "VN"


@dataclass(frozen=True, slots=True)
class Unit:
    """One administrative unit as the official list spells it (e.g. `C06901` 'Xã Quảng An')."""

    id: str
    name: str
    level: Level
    tree: TreeVersion
    parent_id: str | None


class OrgTree:
    """One tree version, immutable after construction; every lookup is a dict access."""

    __slots__ = ("_by_level", "_children", "_units", "_version")

    def __init__(self, version: TreeVersion, units: Iterable[Unit]) -> None:
        self._version: TreeVersion = version
        self._units: dict[str, Unit] = _index(version, units)
        self._children: dict[str, tuple[Unit, ...]] = _children_of(self._units)
        self._by_level: dict[Level, tuple[Unit, ...]] = {
            level: tuple(sorted((u for u in self._units.values() if u.level == level), key=_by_id))
            for level in LEVELS
        }

    @property
    def version(self) -> TreeVersion:
        return self._version

    def __repr__(self) -> str:
        return f"OrgTree(version={self._version!r}, units={len(self._units)})"

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, unit_id: object) -> bool:
        return isinstance(unit_id, str) and unit_id in self._units

    def get(self, unit_id: str) -> Unit | None:
        return self._units.get(unit_id)

    def unit(self, unit_id: str) -> Unit:
        """The unit with this id; KeyError if this tree has none."""
        try:
            return self._units[unit_id]
        except KeyError:
            raise KeyError(f"{unit_id!r} is not a unit of the {self._version} tree") from None

    def parent(self, unit_id: str) -> Unit | None:
        """The unit one step up; None for `VN`. KeyError if unknown."""
        parent_id = self.unit(unit_id).parent_id
        return None if parent_id is None else self._units[parent_id]

    def ancestors(self, unit_id: str) -> tuple[Unit, ...]:
        """Units above this one, nearest first; the last is `VN` (empty for `VN` itself)."""
        chain: list[Unit] = []
        parent = self.parent(unit_id)
        while parent is not None:
            chain.append(parent)
            parent = self.parent(parent.id)
        return tuple(chain)

    def children(self, unit_id: str) -> tuple[Unit, ...]:
        """Units directly below, sorted by id (codes are zero-padded, so also by code)."""
        self.unit(unit_id)
        return self._children.get(unit_id, ())

    def province_of(self, unit_id: str) -> str:
        """The id of the province containing the unit (itself if a province); KeyError for `VN`."""
        for unit in (self.unit(unit_id), *self.ancestors(unit_id)):
            if unit.level == "province":
                return unit.id
        raise KeyError(f"{unit_id!r} lies in no province")

    def units(self, level: Level | None = None) -> Iterator[Unit]:
        """Units of one level sorted by id, or all units from the root down, level by level."""
        levels = LEVELS if level is None else (level,)
        for each in levels:
            yield from self._by_level[each]

    def is_within(self, unit_id: str, ancestor_id: str) -> bool:
        """True if the unit is `ancestor_id` or lies below it; False if either is unknown."""
        if unit_id not in self._units or ancestor_id not in self._units:
            return False
        return unit_id == ancestor_id or any(a.id == ancestor_id for a in self.ancestors(unit_id))

    def attachable(self, unit_id: str) -> bool:
        """May a branch [chi bộ] name this unit as its parent?

        Communes, and districts with no commune below them (the island districts
        [huyện đảo] such as Côn Đảo, whose party committee stands in for a commune one).
        False for anything else, including unknown ids.
        """
        unit = self._units.get(unit_id)
        if unit is None:
            return False
        return unit.level == "commune" or (unit.level == "district" and unit_id not in self._children)


@dataclass(frozen=True, slots=True, eq=False)
class OrgTrees:
    """Both tree versions and the crosswalk from legacy units to their 2025 commune.

    `crosswalk` maps each attachable legacy id to its 2025 commune id; `divided`
    names the legacy ids split across several 2025 communes, which the crosswalk
    sends to the officially designated default; `crosswalk_exceptions` gives the
    reason for each attachable legacy id with no 2025 home.
    """

    legacy: OrgTree
    v2025: OrgTree
    crosswalk: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    crosswalk_exceptions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    divided: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.legacy.version != "legacy" or self.v2025.version != "2025":
            raise ValueError("OrgTrees needs the legacy tree and the 2025 tree, in that order")
        for old_id, new_id in self.crosswalk.items():
            if not self.legacy.attachable(old_id) or self.v2025.unit(new_id).level != "commune":
                raise ValueError(f"crosswalk {old_id} -> {new_id} is not attachable -> commune")
        if both := set(self.crosswalk) & set(self.crosswalk_exceptions):
            raise ValueError(f"mapped and exceptions at once: {sorted(both)}")
        if stray := self.divided - set(self.crosswalk):
            raise ValueError(f"divided but not mapped: {sorted(stray)}")

    def __getitem__(self, version: TreeVersion) -> OrgTree:
        if version == "legacy":
            return self.legacy
        if version == "2025":
            return self.v2025
        raise KeyError(f"unknown tree version {version!r}")

    def to_2025(self, legacy_commune_id: str) -> str | None:
        """The 2025 commune a legacy commune (or island district) became part of.

        None for crosswalk exceptions and for ids that are not attachable legacy units.
        """
        return self.crosswalk.get(legacy_commune_id)


def _by_id(unit: Unit) -> str:
    return unit.id


def _index(version: TreeVersion, units: Iterable[Unit]) -> dict[str, Unit]:
    index: dict[str, Unit] = {}
    for unit in units:
        if unit.id in index:
            raise ValueError(f"duplicate unit id {unit.id!r} in the {version} tree")
        if unit.tree != version:
            raise ValueError(f"{unit.id} belongs to the {unit.tree} tree, not {version}")
        index[unit.id] = unit
    _check_shape(version, index)
    return index


def _check_shape(version: TreeVersion, index: Mapping[str, Unit]) -> None:
    root = index.get(ROOT_ID)
    if root is None or root.level != "national" or root.parent_id is not None:
        raise ValueError(f"the {version} tree needs the root {ROOT_ID} at national level")
    for unit in index.values():
        if unit.id == ROOT_ID:
            continue
        parent = index.get(unit.parent_id) if unit.parent_id is not None else None
        if parent is None or _DEPTH[parent.level] >= _DEPTH[unit.level]:
            raise ValueError(f"{unit.id} has no valid parent in the {version} tree ({unit.parent_id!r})")


def _children_of(index: Mapping[str, Unit]) -> dict[str, tuple[Unit, ...]]:
    grouped: dict[str, list[Unit]] = {}
    for unit in index.values():
        if unit.parent_id is not None:
            grouped.setdefault(unit.parent_id, []).append(unit)
    return {parent_id: tuple(sorted(kids, key=_by_id)) for parent_id, kids in grouped.items()}
