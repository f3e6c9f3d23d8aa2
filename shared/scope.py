"""What a token may touch: its provinces [tỉnh] in each org tree, or the whole country.

A token's scope is a list of entries (``KETNAP_TOKENS``): ``*`` (national),
``legacy:P10`` / ``2025:P15`` (a province of one tree) or ``P22`` (that province
id in both trees). Invariants:

- a national scope covers every unit of both trees, ``VN`` included;
- a provincial scope covers a unit of tree ``t`` exactly when the unit is one of
  its provinces of ``t`` or lies below one; it never covers ``VN`` nor an id the
  tree does not have;
- scopes are read-only values: intake uses them to authorise writes, quota and
  reporting to authorise reads (a read of a unit is allowed iff ``covers``);
- every check of a place against a scope goes through :meth:`TokenScope.holds` (a
  province of a tree): ``covers`` for units, :func:`admits` for the province a voided
  event lies in. A place that is not known (None) is never held.

A void of an event the intake has not seen carries the voiding token's scope to the
quota in the CloudEvents extension ``voidscope`` (:data:`VOID_SCOPE`): the entries of
:meth:`TokenScope.describe`, space separated (``legacy:P10 2025:P15``); the quota
applies it only to an event whose place the scope holds (:func:`admits`).

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
VOID_SCOPE: Final = "voidscope"
"""The CloudEvents extension with the voiding token's scope (lowercase a-z0-9, at most 20 characters)."""
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

    def holds(self, tree: TreeVersion, province: str | None) -> bool:
        """Is ``province`` of ``tree`` one of this scope's provinces? Every one for national; None never."""
        if province is None:
            return False
        if self.national:
            return True
        return province in (self.legacy if tree == "legacy" else self.v2025)

    def covers(self, unit_id: str, tree: TreeVersion, trees: OrgTrees) -> bool:
        """Is ``unit_id`` of ``tree`` inside this scope? False for ids the tree does not have."""
        org = trees[tree]
        if unit_id not in org:
            return False
        if self.national:
            return True
        if unit_id == "VN":
            return False
        return self.holds(tree, province_of(org, unit_id))

    def describe(self) -> list[str]:
        """A loggable, token-free description: ``["*"]`` or ``["legacy:P10", "2025:P15", ...]``."""
        if self.national:
            return [NATIONAL]
        return [f"{tree}:{p}" for tree in TREES for p in sorted(self.provinces[tree])]


def void_scope(scope: TokenScope) -> str:
    """The ``voidscope`` value of a scope: its entries, tree-qualified, space separated."""
    return " ".join(scope.describe())


def parse_void_scope(value: str) -> tuple[str, ...]:
    """A ``voidscope`` value as the canonical entries of its scope (ValueError if malformed).

    Any ``KETNAP_TOKENS`` grammar is read (``P22`` is that id in both trees), so the
    result is tree-qualified and sorted as :meth:`TokenScope.describe` writes it; an
    empty value is a scope of no province (it holds nothing).
    """
    if not isinstance(value, str):
        raise ValueError("voidscope must be a string of scope entries")
    return tuple(TokenScope.parse(value.split()).describe())


def admits(entries: Iterable[str], place: str | None) -> bool:
    """Does the scope written as ``entries`` hold ``place``, a province of a tree as ``<tree>:P..``?

    The quota's test for a ``voidscope`` void: ``place`` is where the voided event lies
    (:func:`place`), None when that is not known (then never).
    """
    if place is None:
        return False
    parsed = _parse_entry(place)
    if parsed is None or len(parsed[0]) != 1:
        return False
    (tree,), province = parsed
    return TokenScope.parse(entries).holds(tree, province)


def place(tree: TreeVersion, province: str) -> str:
    """Where an event lies, as :func:`admits` reads it: ``legacy:P10``."""
    return f"{tree}:{province}"


UNPLACED: Final = "unplaced"
"""The place of an event looked up and found in no province: no scope holds it."""


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
