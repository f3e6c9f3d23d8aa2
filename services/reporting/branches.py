"""Branch rows: the latest registration and the placement in both trees, read and locked in id order.

A branch row exists from the first time the service hears of the branch (a tally
or its registration). On PostgreSQL (several replicas) a fold must not add counts
along a chain that a registration is moving the branch away from: folds hold a
shared advisory lock, registrations the exclusive one, taken before any row lock
(so no deadlock). Registrations are rare; folds never wait for each other, and no
branch row is locked (a row lock writes the tuple: ~10 µs per branch and batch).
A fold keeps the rows it read (:class:`KnownBranches`) while no registration has
updated any branch row since (``reporting_placement_gen``, raised by a trigger).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.aggregates import Deltas
from services.reporting.bulk import Row, Upsert, as_json, driver, fetch_keyed, is_postgres, upsert
from services.reporting.placing import TREES, PlacementRow, Placer
from shared.orgtree import TreeVersion

PLACEMENT_COLUMNS: Final = (
    "anchor_legacy",
    "mapped_legacy",
    "district_legacy",
    "province_legacy",
    "anchor_2025",
    "mapped_2025",
    "province_2025",
)
_PLACEMENT_TYPES: Final = ("text", "bool", "text", "text", "text", "bool", "text")
REGISTRATION_COLUMNS: Final = ("name", "kind", "legacy_parent", "parent_2025", "registered_at", "event_id")
PLACEMENT_LOCK: Final = zlib.crc32(b"reporting_placements")
_REGISTRATION_TYPES: Final = ("text", "text", "text", "text", "timestamptz", "text")

NEW_BRANCHES: Final = Upsert(
    "reporting_branches",
    ("branch_id", *PLACEMENT_COLUMNS),
    ("text", *_PLACEMENT_TYPES),
    ("branch_id",),
    None,
)
BRANCHES: Final = Upsert(
    "reporting_branches",
    ("branch_id", *REGISTRATION_COLUMNS, *PLACEMENT_COLUMNS),
    ("text", *_REGISTRATION_TYPES, *_PLACEMENT_TYPES),
    ("branch_id",),
    ", ".join(f"{c} = excluded.{c}" for c in (*REGISTRATION_COLUMNS, *PLACEMENT_COLUMNS)),
)


class BranchState(NamedTuple):
    """What the fold needs of a branch row: its registration's precedence and both placements."""

    branch_id: str
    registered: tuple[datetime, str] | None
    legacy: PlacementRow
    v2025: PlacementRow

    def placement(self, tree: TreeVersion) -> PlacementRow:
        return self.legacy if tree == "legacy" else self.v2025


def placement_values(legacy: PlacementRow, v2025: PlacementRow) -> Row:
    """The values of ``PLACEMENT_COLUMNS`` for a pair of placements."""
    return (
        legacy.anchor,
        legacy.mapped,
        legacy.district_id,
        legacy.province_id,
        v2025.anchor,
        v2025.mapped,
        v2025.province_id,
    )


def activity_places(state: BranchState) -> Row:
    """The values of ``ACTIVITY_PLACES`` for a branch."""
    legacy, v2025 = state.legacy, state.v2025
    return (legacy.anchor, legacy.district_id, legacy.province_id, v2025.anchor, v2025.province_id)


def branch_state(row: Row) -> BranchState:
    """The state of a ``BRANCHES`` row (branch_id, registration columns, placement columns)."""
    registration = len(REGISTRATION_COLUMNS)
    return _state((row[0], None, None, *row[1 + registration :]))


class KnownBranches:
    """Branch states a fold read before, kept while the placement generation holds.

    Every update of ``reporting_branches`` (a registration, from a replica of any
    release) raises ``reporting_placement_gen`` in its own transaction, under the
    exclusive placement lock. A fold reads the generation under the shared lock: the
    same number means no stored placement moved since its states were read, so a
    batch's ~3,000 branch rows need not be read and decoded again (a seventh of the
    fold's Python time, 2026-12-07). Only rows read as committed are kept, never rows
    the fold's own transaction inserted: a rollback would leave those known but not
    stored. At most ``limit`` states; then it starts again. A state takes ~700 bytes:
    ~70 MB for a national 100,000 branches.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.generation: int | None = None
        self.states: dict[str, BranchState] = {}

    async def check(self, connection: AsyncConnection) -> None:
        """Forget everything if a registration has run since the states were read (call under the lock)."""
        result = await connection.exec_driver_sql("SELECT gen FROM reporting_placement_gen")
        generation = result.scalar_one()
        if generation != self.generation:
            self.states.clear()
            self.generation = generation

    def keep(self, states: dict[str, BranchState]) -> None:
        if len(self.states) + len(states) > self.limit:
            self.states.clear()
        self.states |= states


async def lock_branches(
    connection: AsyncConnection,
    placer: Placer,
    branch_ids: Sequence[str],
    moving: bool,
    deltas: Deltas,
    known: KnownBranches | None = None,
) -> dict[str, BranchState]:
    """Every branch's state; branches never seen get a row unmapped at ``VN`` in both trees.

    ``moving``: the caller may change placements (exclusive lock), else it only adds
    counts (shared). New rows are counted in ``deltas`` (``reporting.branches``).
    ``known``: states kept from earlier batches (checked against the generation here).
    """
    ids = sorted(set(branch_ids))
    if is_postgres(connection):
        lock = "pg_advisory_xact_lock" if moving else "pg_advisory_xact_lock_shared"
        await connection.exec_driver_sql(f"SELECT {lock}({PLACEMENT_LOCK})")
    if known is None:
        found = await _fetch(connection, ids)
    else:
        await known.check(connection)
        held = known.states
        found = {b: state for b in ids if (state := held.get(b)) is not None}
        read = await _fetch(connection, [b for b in ids if b not in found])
        known.keep(read)
        found |= read
    missing = [b for b in ids if b not in found]
    if not missing:
        return found
    fresh = {b: (placer.unregistered("legacy", b), placer.unregistered("2025", b)) for b in missing}
    inserted = await _insert(connection, [(b, *placement_values(*fresh[b])) for b in missing])
    for branch_id in inserted:
        for row in fresh[branch_id]:
            deltas.count_branch(placer.plan(row.tree, row.anchor), +1)
    if is_postgres(connection):
        found |= await _fetch(connection, missing)  # a concurrent fold may have inserted first
    else:
        found |= {b: BranchState(b, None, *fresh[b]) for b in missing}
    return found


async def _insert(connection: AsyncConnection, rows: Sequence[Row]) -> list[str]:
    """Insert rows that are not there yet; the ids actually inserted."""
    if not is_postgres(connection):
        await upsert(connection, NEW_BRANCHES, rows)
        return [row[0] for row in rows]
    native = await driver(connection)
    returned = await native.fetch(NEW_BRANCHES.postgres_sql() + " RETURNING branch_id", as_json(rows))
    return [r["branch_id"] for r in returned]


async def _fetch(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, BranchState]:
    rows = await fetch_keyed(
        connection,
        "reporting_branches",
        ("branch_id",),
        ("text",),
        ("registered_at", "event_id", *PLACEMENT_COLUMNS),
        [(b,) for b in ids],
    )
    return {row[0]: _state(row) for row in rows}


def _state(row: Row) -> BranchState:
    branch_id, registered_at, event_id, la, lm, ld, lp, na, nm, np = row
    registered = (utc(registered_at), event_id) if registered_at is not None else None
    return BranchState(
        branch_id,
        registered,
        PlacementRow("legacy", branch_id, la, bool(lm), ld, lp),
        PlacementRow("2025", branch_id, na, bool(nm), None, np),
    )


def utc(value: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back the ISO text we wrote)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__ = [
    "BRANCHES",
    "TREES",
    "BranchState",
    "KnownBranches",
    "activity_places",
    "branch_state",
    "lock_branches",
    "placement_values",
    "utc",
]
