"""What a token may touch: its provinces [tỉnh] in each org tree, or the whole country.

A token's scope is a list of entries (``KETNAP_TOKENS``): ``*`` (national),
``legacy:P10`` / ``2025:P15`` (a province of one tree) or ``P22`` (that province
id in both trees). Invariants:

- a national scope covers every unit of both trees, ``VN`` included;
- a provincial scope covers a unit of tree ``t`` exactly when the unit is one of
  its provinces of ``t`` or lies below one; it never covers ``VN`` nor an id the
  tree does not have;
- scopes are read-only values: intake uses them to authorise writes, quota and
  reporting to authorise reads (a read of a unit is allowed iff ``covers``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Final, get_args

from shared.orgtree import OrgTree, OrgTrees, TreeVersion

NATIONAL: Final = "*"
TREES: Final[tuple[TreeVersion, ...]] = get_args(TreeVersion)
_ENTRY = re.compile(r"^(?:(?P<tree>legacy|2025):)?(?P<province>P\d{2})$")


@dataclass(frozen=True, slots=True)
class TokenScope:
    """The provinces a token covers in each tree, or ``national``."""

    national: bool
    legacy: frozenset[str] = frozenset()
    v2025: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TokenScope:
        """Scope from config entries; ValueError for anything but ``*``, ``P..`` or ``<tree>:P..``."""
        national, per_tree = False, {tree: set[str]() for tree in TREES}
        for entry in entries:
            if entry == NATIONAL:
                national = True
                continue
            parsed = _parse_entry(entry)
            if parsed is None:
                raise ValueError(f"bad scope entry {entry!r}: use '*', 'P22', 'legacy:P10' or '2025:P15'")
            trees, province = parsed
            for tree in trees:
                per_tree[tree].add(province)
        if national:
            return cls(national=True)
        return cls(national=False, legacy=frozenset(per_tree["legacy"]), v2025=frozenset(per_tree["2025"]))

    @property
    def provinces(self) -> Mapping[TreeVersion, frozenset[str]]:
        """Province ids per tree (empty for a national scope: it needs no list)."""
        return MappingProxyType({"legacy": self.legacy, "2025": self.v2025})

    def covers(self, unit_id: str, tree: TreeVersion, trees: OrgTrees) -> bool:
        """Is ``unit_id`` of ``tree`` inside this scope? False for ids the tree does not have."""
        org = trees[tree]
        if unit_id not in org:
            return False
        if self.national:
            return True
        if unit_id == "VN":
            return False
        return province_of(org, unit_id) in (self.legacy if tree == "legacy" else self.v2025)

    def describe(self) -> list[str]:
        """A loggable, token-free description: ``["*"]`` or ``["legacy:P10", "2025:P15", ...]``."""
        if self.national:
            return [NATIONAL]
        return [f"{tree}:{p}" for tree in TREES for p in sorted(self.provinces[tree])]


@lru_cache(maxsize=1 << 16)
def province_of(org: OrgTree, unit_id: str) -> str:
    """``org.province_of``, memoised: trees are immutable and this is asked for every event."""
    return org.province_of(unit_id)


def unknown_entries(entries: Iterable[str], trees: OrgTrees) -> list[str]:
    """Entries naming no province of their tree (an unprefixed one: of either tree); a config mistake."""
    unknown = []
    for entry in entries:
        parsed = _parse_entry(entry)
        if parsed is None:
            continue  # TokenScope.parse refuses malformed entries
        candidates, province = parsed
        if not any(_is_province(trees[tree], province) for tree in candidates):
            unknown.append(entry)
    return unknown


def _parse_entry(entry: str) -> tuple[tuple[TreeVersion, ...], str] | None:
    """``legacy:P10`` -> ((legacy,), P10); ``P22`` -> ((legacy, 2025), P22); None if malformed."""
    match = _ENTRY.fullmatch(entry.strip())
    if match is None:
        return None
    tree = match["tree"]
    trees: tuple[TreeVersion, ...] = TREES if tree is None else ("legacy" if tree == "legacy" else "2025",)
    return trees, match["province"]


def _is_province(org: OrgTree, unit_id: str) -> bool:
    unit = org.get(unit_id)
    return unit is not None and unit.level == "province"


def parse_scopes(raw: Mapping[str, Iterable[str]]) -> dict[str, TokenScope]:
    """Every configured token's scope (token -> scope); ValueError names the bad entry, never the token."""
    return {token: TokenScope.parse(entries) for token, entries in raw.items()}
