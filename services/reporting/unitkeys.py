"""A unit of one tree as one integer: the key of the aggregate rows (``reporting_unit_months``,
``reporting_unit_days``).

Every unit id of both official trees has one of four forms (``VN``, ``Pnn``, ``Dnnn``,
``Cnnnnn``), so (tree, unit id) maps to an ``int4`` and back without a lookup table:
the level's base plus the id's number, plus ``TREE_2025`` for the 2025 tree. As the
rows' key it replaced two text columns (2026-12-07): a B-tree compares integers
without the text comparison and variable-width attribute walk, and a national year's
rows and indexes are a sixth smaller; the month and day upserts went from ~71 to ~51 µs
of PostgreSQL's CPU per change (``docs/performance.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from shared.orgtree import TreeVersion

TREE_2025: Final = 10_000_000
LEVEL_BASE: Final = {"P": 1_000_000, "D": 2_000_000, "C": 3_000_000}
WIDTH: Final = {"P": 2, "D": 3, "C": 5}
_FORM: Final = re.compile(r"VN|P[0-9]{2}|D[0-9]{3}|C[0-9]{5}")
_LEVEL_OF_BASE: Final = {base: letter for letter, base in LEVEL_BASE.items()}


def unit_key(tree: TreeVersion, unit_id: str) -> int:
    """The row key of ``unit_id`` in ``tree``; ValueError for an id of no official form."""
    if _FORM.fullmatch(unit_id) is None:
        raise ValueError(f"not a unit id of the official trees: {unit_id!r}")
    own = 0 if unit_id == "VN" else LEVEL_BASE[unit_id[0]] + int(unit_id[1:])
    return own + (TREE_2025 if tree == "2025" else 0)


def keyed(tree: TreeVersion, unit_ids: Iterable[str]) -> dict[int, str]:
    """Each unit's row key, mapped back to its id: what a query over the rows asks and reads."""
    return {unit_key(tree, unit_id): unit_id for unit_id in unit_ids}


def unit_of(key: int) -> tuple[TreeVersion, str]:
    """The (tree, unit id) of a row key: the inverse of :func:`unit_key`."""
    tree: TreeVersion = "2025" if key >= TREE_2025 else "legacy"
    own = key - TREE_2025 if tree == "2025" else key
    if own == 0:
        return tree, "VN"
    base = own // 1_000_000 * 1_000_000
    letter = _LEVEL_OF_BASE.get(base)
    number = own - base
    if letter is None or number >= 10 ** WIDTH[letter]:
        raise ValueError(f"not a unit key: {key}")
    return tree, f"{letter}{number:0{WIDTH[letter]}d}"


def key_sql(tree: str, unit_id: str) -> str:
    """SQL (PostgreSQL and SQLite alike) computing :func:`unit_key` from two text columns."""
    levels = " ".join(f"WHEN '{letter}' THEN {base}" for letter, base in LEVEL_BASE.items())
    return (
        f"(CASE WHEN {tree} = '2025' THEN {TREE_2025} ELSE 0 END"
        f" + CASE substr({unit_id}, 1, 1) {levels} ELSE 0 END"
        f" + CASE WHEN {unit_id} = 'VN' THEN 0 ELSE CAST(substr({unit_id}, 2) AS INTEGER) END)"
    )


def tree_sql(key: str) -> str:
    """SQL computing the tree of a row key (the inverse's first half)."""
    return f"(CASE WHEN {key} >= {TREE_2025} THEN '2025' ELSE 'legacy' END)"


def unit_id_sql(key: str, dialect: str) -> str:
    """SQL computing the unit id of a row key, for ``dialect`` (``postgresql`` or ``sqlite``)."""
    own = f"({key} % {TREE_2025})"

    def padded(letter: str) -> str:
        number = f"({own} - {LEVEL_BASE[letter]})"
        if dialect == "sqlite":
            return f"printf('{letter}%0{WIDTH[letter]}d', {number})"
        return f"'{letter}' || lpad(CAST({number} AS TEXT), {WIDTH[letter]}, '0')"

    cases = " ".join(
        f"WHEN {own} < {base + 1_000_000} THEN {padded(letter)}" for letter, base in LEVEL_BASE.items()
    )
    return f"(CASE WHEN {own} = 0 THEN 'VN' {cases} END)"
