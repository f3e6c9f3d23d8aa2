"""Tiny org trees and crosswalks for the reporting unit tests, and hypothesis strategies."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from hypothesis import strategies as st

from shared.orgtree import TreeVersion


@dataclass(frozen=True, slots=True)
class FakeUnit:
    id: str
    name: str
    level: str
    parent_id: str | None


class FakeTree:
    """A tree given as (id, level, parent_id) rows; children keep insertion order sorted by id."""

    def __init__(self, version: TreeVersion, rows: list[tuple[str, str, str | None]]) -> None:
        self.version = version
        self._units = {uid: FakeUnit(uid, f"{level} {uid}", level, parent) for uid, level, parent in rows}
        self._children: dict[str, list[FakeUnit]] = {}
        for unit in self._units.values():
            if unit.parent_id is not None:
                self._children.setdefault(unit.parent_id, []).append(unit)

    def get(self, unit_id: str, /) -> FakeUnit | None:
        return self._units.get(unit_id)

    def ancestors(self, unit_id: str, /) -> tuple[FakeUnit, ...]:
        found: list[FakeUnit] = []
        parent = self._units[unit_id].parent_id
        while parent is not None:
            found.append(self._units[parent])
            parent = self._units[parent].parent_id
        return tuple(found)

    def children(self, unit_id: str, /) -> tuple[FakeUnit, ...]:
        return tuple(sorted(self._children.get(unit_id, ()), key=lambda u: u.id))

    def units(self) -> Iterator[FakeUnit]:
        return iter(self._units.values())

    def leaves(self) -> list[str]:
        """Units a branch may name as parent: communes and commune-less districts."""
        return [u.id for u in self._units.values() if u.level != "national" and u.id not in self._children
                and u.level in ("commune", "district")]  # fmt: skip


@dataclass(frozen=True)
class FakeCrossWalk:
    pairs: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def containers(self, from_tree: TreeVersion, unit_id: str, /) -> frozenset[str]:
        return self.pairs.get((from_tree, unit_id), frozenset())


def legacy_tree(shape: list[list[int]]) -> FakeTree:
    """`shape[p][d]` = number of communes of district d of province p (0: an island district)."""
    rows: list[tuple[str, str, str | None]] = [("VN", "national", None)]
    district = commune = 0
    for p, districts in enumerate(shape):
        province_id = f"P{p + 1:02d}"
        rows.append((province_id, "province", "VN"))
        for communes in districts:
            district += 1
            rows.append((f"D{district:03d}", "district", province_id))
            for _ in range(communes):
                commune += 1
                rows.append((f"C{commune:05d}", "commune", f"D{district:03d}"))
    return FakeTree("legacy", rows)


def tree_2025(shape: list[int]) -> FakeTree:
    """`shape[p]` = number of communes of province p; commune ids reuse legacy-like codes."""
    rows: list[tuple[str, str, str | None]] = [("VN", "national", None)]
    commune = 0
    for p, communes in enumerate(shape):
        province_id = f"P{p + 1:02d}"
        rows.append((province_id, "province", "VN"))
        for _ in range(communes):
            commune += 1
            rows.append((f"C{commune:05d}", "commune", province_id))
    return FakeTree("2025", rows)


legacy_shapes = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=2), min_size=1, max_size=3)
shapes_2025 = st.lists(st.integers(1, 4), min_size=1, max_size=2)


@st.composite
def trees_and_crosswalk(draw: st.DrawFn) -> tuple[dict[TreeVersion, FakeTree], FakeCrossWalk]:
    trees: dict[TreeVersion, FakeTree] = {
        "legacy": legacy_tree(draw(legacy_shapes)),
        "2025": tree_2025(draw(shapes_2025)),
    }
    pairs: dict[tuple[str, str], frozenset[str]] = {}
    for source, target in (("legacy", "2025"), ("2025", "legacy")):
        target_ids = sorted(u.id for u in trees[target].units())  # type: ignore[index]
        for unit in trees[source].units():  # type: ignore[index]
            chosen = draw(st.lists(st.sampled_from([*target_ids, "C99999"]), max_size=2))
            if chosen:
                pairs[(source, unit.id)] = frozenset(chosen)
    return trees, FakeCrossWalk(pairs)
