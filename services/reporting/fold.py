"""Folding tally changes and registrations into the reporting tables, inside the caller's transaction.

Rules kept here (the consumer stores the position in the same transaction):
- a tally change applies iff its ``version`` is above the stored one for its key
  (branch, day, series); it then sets the absolute ``value`` and moves every
  aggregate by ``value - stored value``: repeats and stale versions change nothing;
- a branch seen in tallies before its registration is placed unmapped at ``VN``
  in both trees; when the registration arrives its counts move, in the same
  transaction, from the old chain to the new one: nothing is dropped;
- lock order (PostgreSQL, several replicas): placements, then tallies, then the
  aggregate rows sorted by key; so a fold and a registration never deadlock and a
  fold never adds a delta to a chain a registration is moving away from.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.aggregates import ACTIVITY_COLUMNS, ActivityMasks, Deltas
from services.reporting.bulk import Row, Upsert, fetch_keyed, upsert
from services.reporting.domain import BranchRegistration, Target
from services.reporting.domain.targets import TargetKey
from services.reporting.placing import TREES, PlacementRow, Placer
from services.reporting.series import series_of
from services.reporting.tables import MONTH_COLUMNS
from shared.orgtree import TreeVersion

TALLIES = Upsert(
    "reporting_tallies",
    ("branch_id", "series", "day", "value", "version"),
    ("text", "int2", "int4", "int8", "int8"),
    ("branch_id", "series", "day"),
    "value = excluded.value, version = excluded.version",
)
UNIT_MONTHS = Upsert(
    "reporting_unit_months",
    ("tree", "unit_id", "series", "part", "month", "value"),
    ("text", "text", "int2", "int2", "int4", "int8"),
    ("tree", "unit_id", "series", "part", "month"),
    "value = t.value + excluded.value",
)
UNIT_DAYS = Upsert(
    "reporting_unit_days",
    ("tree", "unit_id", "series", "part", "day", "value"),
    ("text", "text", "int2", "int2", "int4", "int8"),
    ("tree", "unit_id", "series", "part", "day"),
    "value = t.value + excluded.value",
)
UNIT_BRANCHES = Upsert(
    "reporting_unit_branches",
    ("tree", "unit_id", "n"),
    ("text", "text", "int4"),
    ("tree", "unit_id"),
    "n = t.n + excluded.n",
)
DIRTY = Upsert(
    "reporting_dirty",
    ("tree", "unit_id", "month"),
    ("text", "text", "int4"),
    ("tree", "unit_id", "month"),
    None,
)
ACTIVITY_SET = Upsert(
    "reporting_activity",
    ACTIVITY_COLUMNS,
    ("text", "int2", *("int4" for _ in MONTH_COLUMNS)),
    ("branch_id", "year"),
    ", ".join(f"{m} = t.{m} | excluded.{m}" for m in MONTH_COLUMNS),
)
PLACEMENTS = Upsert(
    "reporting_placements",
    ("tree", "branch_id", "anchor", "mapped", "district_id", "province_id"),
    ("text", "text", "text", "bool", "text", "text"),
    ("tree", "branch_id"),
    "anchor = excluded.anchor, mapped = excluded.mapped, "
    "district_id = excluded.district_id, province_id = excluded.province_id",
)
NEW_BRANCHES = Upsert("reporting_branches", ("branch_id",), ("text",), ("branch_id",), None)
BRANCHES = Upsert(
    "reporting_branches",
    ("branch_id", "name", "kind", "legacy_parent", "parent_2025", "registered_at", "event_id"),
    ("text", "text", "text", "text", "text", "timestamptz", "text"),
    ("branch_id",),
    "name = excluded.name, kind = excluded.kind, legacy_parent = excluded.legacy_parent, "
    "parent_2025 = excluded.parent_2025, registered_at = excluded.registered_at, "
    "event_id = excluded.event_id",
)


@dataclass(frozen=True, slots=True)
class Change:
    """One tally change as the fold needs it: day as an ordinal, (metric, category) as a series."""

    branch_id: str
    day: int
    series: int
    value: int
    version: int


@dataclass(frozen=True, slots=True)
class Registration:
    """A ``branch_registered`` event: the branch, its parents and (time, id) for latest-wins."""

    branch: BranchRegistration
    time: datetime
    event_id: str

    @property
    def precedence(self) -> tuple[datetime, str]:
        return (self.time, self.event_id)


@dataclass
class FoldOutcome:
    applied: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    moved_branches: int = 0


PlacementKey = tuple[str, str]
"""(tree, branch_id)"""


class Folder:
    """The write side of the reporting service; every method runs in the caller's transaction."""

    def __init__(self, placer: Placer) -> None:
        self.placer = placer

    async def fold(self, connection: AsyncConnection, changes: Sequence[Change]) -> FoldOutcome:
        """Apply tally changes: value-based last-write-wins per key on ``version``."""
        outcome = FoldOutcome()
        latest = _latest_per_key(changes, outcome.skipped)
        if not latest:
            return outcome
        deltas = Deltas()
        placements = await self._placements_for(connection, {k[0] for k in latest}, deltas)
        stored = {
            (b, s, d): (value, version)
            for b, s, d, value, version in await fetch_keyed(
                connection,
                "reporting_tallies",
                ("branch_id", "series", "day"),
                ("text", "int2", "int4"),
                ("value", "version"),
                list(latest),
            )
        }
        rows: list[Row] = []
        touched: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        for key, change in latest.items():
            old_value, old_version = stored.get(key, (0, 0))
            if change.version <= old_version:
                outcome.skipped["repeated" if change.version == old_version else "stale"] += 1
                continue
            outcome.applied += 1
            rows.append((change.branch_id, change.series, change.day, change.value, change.version))
            touched[(change.branch_id, change.day)].append((old_value, change.value))
            delta = change.value - old_value
            if delta:
                for tree in TREES:
                    row = placements[(tree, change.branch_id)]
                    deltas.add(
                        self.placer.plan(tree, row.anchor), row.mapped, change.series, change.day, delta
                    )
        await upsert(connection, TALLIES, rows)
        await self._activity(connection, touched)
        await self._write(connection, deltas)
        return outcome

    async def register(
        self, connection: AsyncConnection, registrations: Sequence[Registration]
    ) -> FoldOutcome:
        """Record the latest registration of each branch and move its counts if its place changed."""
        outcome = FoldOutcome()
        newest: dict[str, Registration] = {}
        for reg in registrations:
            seen = newest.get(reg.branch.branch_id)
            if seen is None or reg.precedence > seen.precedence:
                newest[reg.branch.branch_id] = reg
        if not newest:
            return outcome
        held_rows = await self._lock_branches(connection, sorted(newest), "FOR UPDATE")
        held = {b: (_utc(at), eid) for b, at, eid in held_rows if at is not None}
        winners = [r for b, r in sorted(newest.items()) if b not in held or r.precedence > held[b]]
        outcome.skipped["stale_registration"] += len(newest) - len(winners)
        if not winners:
            return outcome
        await upsert(connection, BRANCHES, [_branch_row(r) for r in winners])
        outcome.moved_branches = await self._replace_placements(connection, [r.branch for r in winners])
        return outcome

    async def _replace_placements(
        self, connection: AsyncConnection, branches: Sequence[BranchRegistration]
    ) -> int:
        ids = [b.branch_id for b in branches]
        old = await self._load_placements(connection, ids)
        deltas, new_rows, moves = Deltas(), [], []
        for branch in branches:
            for tree in TREES:
                row = self.placer.place(tree, branch.branch_id, branch)
                before = old.get((tree, branch.branch_id))
                if before is not None and (before.anchor, before.mapped) == (row.anchor, row.mapped):
                    continue
                new_rows.append(row)
                deltas.count_branch(self.placer.plan(tree, row.anchor), +1)
                if before is not None:
                    deltas.count_branch(self.placer.plan(tree, before.anchor), -1)
                    moves.append((before, row))
        await upsert(connection, PLACEMENTS, [_placement_tuple(r) for r in new_rows])
        await self._move_counts(connection, moves, deltas)
        await self._write(connection, deltas)
        return len({before.branch_id for before, _ in moves})

    async def _move_counts(
        self, connection: AsyncConnection, moves: Sequence[tuple[PlacementRow, PlacementRow]], deltas: Deltas
    ) -> None:
        """Take each moved branch's counts off its old chain and put them on the new one."""
        if not moves:
            return
        counts = await self._branch_counts(connection, {before.branch_id for before, _ in moves})
        for before, after in moves:
            old_plan = self.placer.plan(before.tree, before.anchor)
            new_plan = self.placer.plan(after.tree, after.anchor)
            for series, day, value in counts.get(before.branch_id, ()):
                deltas.add(old_plan, before.mapped, series, day, -value)
                deltas.add(new_plan, after.mapped, series, day, value)

    async def _branch_counts(
        self, connection: AsyncConnection, branch_ids: Iterable[str]
    ) -> dict[str, list[Row]]:
        found: dict[str, list[Row]] = defaultdict(list)
        ids = sorted(branch_ids)
        for start in range(0, len(ids), 500):
            result = await connection.execute(
                text(
                    "SELECT branch_id, series, day, value FROM reporting_tallies "
                    "WHERE branch_id IN :ids AND value <> 0"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": ids[start : start + 500]},
            )
            for branch_id, series, day, value in result:
                found[branch_id].append((series, day, value))
        return found

    async def _placements_for(
        self, connection: AsyncConnection, branch_ids: set[str], deltas: Deltas
    ) -> dict[PlacementKey, PlacementRow]:
        """Placements of the batch's branches; unseen branches start unmapped at VN.

        The branch rows are share-locked first: a registration (which locks them for
        update) cannot move a branch while its counts are being added to the chain.
        """
        ids = sorted(branch_ids)
        await self._lock_branches(connection, ids, "FOR SHARE")
        found = await self._load_placements(connection, ids)
        missing = [b for b in ids if ("legacy", b) not in found or ("2025", b) not in found]
        fresh = [self.placer.unregistered(tree, b) for b in missing for tree in TREES]
        await upsert(connection, PLACEMENTS, [_placement_tuple(r) for r in fresh])
        for row in fresh:
            deltas.count_branch(self.placer.plan(row.tree, row.anchor), +1)
            found[(row.tree, row.branch_id)] = row
        return found

    async def _lock_branches(self, connection: AsyncConnection, ids: Sequence[str], lock: str) -> list[Row]:
        """Make sure a row exists for each branch, then lock them all in id order (PostgreSQL)."""
        await upsert(connection, NEW_BRANCHES, [(b,) for b in ids])
        return await fetch_keyed(
            connection,
            "reporting_branches",
            ("branch_id",),
            ("text",),
            ("registered_at", "event_id"),
            [(b,) for b in ids],
            lock=lock,
        )

    async def _load_placements(
        self, connection: AsyncConnection, branch_ids: Sequence[str]
    ) -> dict[PlacementKey, PlacementRow]:
        keys = [(tree, b) for b in branch_ids for tree in TREES]
        rows = await fetch_keyed(
            connection,
            "reporting_placements",
            ("tree", "branch_id"),
            ("text", "text"),
            ("anchor", "mapped", "district_id", "province_id"),
            keys,
        )
        return {
            (tree, b): PlacementRow(_tree(tree), b, anchor, bool(mapped), district, province)
            for tree, b, anchor, mapped, district, province in rows
        }

    async def _activity(
        self, connection: AsyncConnection, touched: dict[tuple[str, int], list[tuple[int, int]]]
    ) -> None:
        """Set the day bit when a key became positive; clear it when the branch's day emptied."""
        masks = ActivityMasks()
        maybe_idle: list[tuple[str, int]] = []
        for (branch_id, day), moves in touched.items():
            if any(old <= 0 < new for old, new in moves):
                masks.mark(branch_id, day, True)
            elif any(new > 0 for _, new in moves):
                continue
            elif any(old > 0 for old, _ in moves):
                maybe_idle.append((branch_id, day))
        if maybe_idle:
            still = {
                (b, d)
                for b, d, _ in await fetch_keyed(
                    connection,
                    "reporting_tallies",
                    ("branch_id", "day"),
                    ("text", "int4"),
                    ("value",),
                    maybe_idle,
                )
                if _ > 0
            }
            for branch_id, day in maybe_idle:
                if (branch_id, day) not in still:
                    masks.mark(branch_id, day, False)
        await upsert(connection, ACTIVITY_SET, masks.set_rows())
        await self._clear_activity(connection, masks.clear_rows())

    async def _clear_activity(self, connection: AsyncConnection, rows: Sequence[Row]) -> None:
        if not rows:
            return
        assignments = ", ".join(f"{m} = {m} & ~CAST(:{m} AS INTEGER)" for m in MONTH_COLUMNS)
        statement = text(f"UPDATE reporting_activity SET {assignments} WHERE branch_id = :b AND year = :y")
        params = [{"b": r[0], "y": r[1], **dict(zip(MONTH_COLUMNS, r[2:], strict=True))} for r in rows]
        await connection.execute(statement, params)

    async def _write(self, connection: AsyncConnection, deltas: Deltas) -> None:
        await upsert(connection, UNIT_BRANCHES, deltas.branch_rows())
        await upsert(connection, UNIT_MONTHS, deltas.month_rows())
        await upsert(connection, UNIT_DAYS, deltas.day_rows())
        await upsert(connection, DIRTY, deltas.dirty_rows())


def _latest_per_key(changes: Iterable[Change], skipped: Counter[str]) -> dict[tuple[str, int, int], Change]:
    """The highest version per key in the batch; lower or equal ones are counted as skipped."""
    latest: dict[tuple[str, int, int], Change] = {}
    for change in changes:
        key = (change.branch_id, change.series, change.day)
        held = latest.get(key)
        if held is None:
            latest[key] = change
        elif change.version > held.version:
            skipped["stale"] += 1
            latest[key] = change
        else:
            skipped["repeated" if change.version == held.version else "stale"] += 1
    return latest


def _tree(value: str) -> TreeVersion:
    return "legacy" if value == "legacy" else "2025"


def _utc(value: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back the ISO text we wrote)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _branch_row(reg: Registration) -> Row:
    b = reg.branch
    return (b.branch_id, b.name, b.kind, b.legacy_parent, b.parent_2025, _utc(reg.time), reg.event_id)


def _placement_tuple(row: PlacementRow) -> Row:
    return (row.tree, row.branch_id, row.anchor, row.mapped, row.district_id, row.province_id)


TARGETS = Upsert(
    "reporting_targets",
    ("tree", "unit_id", "year", "series", "kind", "value", "time", "event_id"),
    ("text", "text", "int2", "int2", "text", "int8", "timestamptz", "text"),
    ("tree", "unit_id", "year", "series", "kind"),
    "value = excluded.value, time = excluded.time, event_id = excluded.event_id",
)


async def set_targets(connection: AsyncConnection, targets: Sequence[Target]) -> int:
    """Keep, per key, the target with the latest (time, event id); how many replaced the held one."""
    newest: dict[TargetKey, Target] = {}
    for target in targets:
        seen = newest.get(target.key)
        if seen is None or target.supersedes(seen):
            newest[target.key] = target
    if not newest:
        return 0
    keys = [(t.tree, t.unit_id, t.year, _series(t)) for t in newest.values()]
    rows = await fetch_keyed(
        connection,
        "reporting_targets",
        ("tree", "unit_id", "year", "series"),
        ("text", "text", "int2", "int2"),
        ("kind", "time", "event_id"),
        keys,
        lock="FOR UPDATE",
    )
    held = {
        (tree, unit, year, series, kind): (_utc(time), eid)
        for tree, unit, year, series, kind, time, eid in rows
    }
    winners = [
        t
        for t in newest.values()
        if (held_at := held.get((t.tree, t.unit_id, t.year, _series(t), t.kind))) is None
        or (_utc(t.time), t.event_id) > held_at
    ]
    await upsert(
        connection,
        TARGETS,
        [(t.tree, t.unit_id, t.year, _series(t), t.kind, t.value, _utc(t.time), t.event_id) for t in winners],
    )
    return len(winners)


def _series(target: Target) -> int:
    series = series_of(target.metric, target.category)
    if series is None:
        raise ValueError(f"unknown metric/category {target.metric}/{target.category}")
    return series
