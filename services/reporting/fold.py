"""Folding tally changes and registrations into the reporting tables, inside the caller's transaction.

Rules kept here (the consumer stores the position in the same transaction):
- a tally change applies iff its ``version`` is above the stored one for its key
  (branch, day, series); it then sets the absolute ``value`` and moves every
  aggregate by ``value - stored value``: repeats and stale versions change nothing;
- a branch seen in tallies before its registration is placed unmapped at ``VN``
  in both trees; when the registration arrives its counts move, in the same
  transaction, from the old chain to the new one: nothing is dropped;
- lock order (PostgreSQL, several replicas): branch rows, then tallies, then the
  aggregate rows sorted by key; so a fold and a registration never deadlock and a
  fold never adds a delta to a chain a registration is moving away from.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.aggregates import ACTIVITY_COLUMNS, ActivityMasks, Deltas
from services.reporting.branches import (
    BRANCHES,
    BranchState,
    KnownBranches,
    activity_places,
    branch_state,
    lock_branches,
    placement_values,
    utc,
)
from services.reporting.bulk import Row, Upsert, fetch_keyed, upsert, upsert_versioned
from services.reporting.domain import BranchRegistration, Target
from services.reporting.domain.targets import TargetKey
from services.reporting.placing import TREES, PlacementRow, Placer, Plan
from services.reporting.queries import in_list
from services.reporting.series import series_of
from services.reporting.tables import ACTIVITY_PLACES, MONTH_COLUMNS
from shared.orgtree import TreeVersion

TALLIES = Upsert(
    "reporting_tallies",
    ("branch_id", "series", "day", "value", "version"),
    ("text", "int2", "int4", "int8", "int8"),
    ("branch_id", "series", "day"),
    # what the update replaces is kept on the row, for ``upsert_versioned`` to return it
    "prev_value = t.value, prev_version = t.version, value = excluded.value, version = excluded.version "
    "WHERE t.version < excluded.version",
)
UNIT_MONTHS = Upsert(
    "reporting_unit_months",
    ("unit", "series", "month", "part", "value"),
    ("int4", "int2", "int4", "int2", "int8"),
    ("unit", "series", "month", "part"),
    "value = t.value + excluded.value",
)
UNIT_DAYS = Upsert(
    "reporting_unit_days",
    ("unit", "series", "day", "part", "value"),
    ("int4", "int2", "int4", "int2", "int8"),
    ("unit", "series", "day", "part"),
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
    "month = excluded.month",  # a new row version even when marked already: see feed._clear
)
ACTIVITY_GEN = Upsert(
    "reporting_activity_gen", ("year", "gen"), ("int2", "int8"), ("year",), "gen = t.gen + excluded.gen"
)
ACTIVITY_SET = Upsert(
    "reporting_activity",
    ACTIVITY_COLUMNS,
    ("text", "int2", *("int4" for _ in MONTH_COLUMNS), *("text" for _ in ACTIVITY_PLACES)),
    ("branch_id", "year"),
    ", ".join(f"{m} = t.{m} | excluded.{m}" for m in MONTH_COLUMNS)
    # a row whose bits are all set already is left as it is: no new row version, no WAL
    + " WHERE ("
    + " | ".join(f"(excluded.{m} & ~t.{m})" for m in MONTH_COLUMNS)
    + ") <> 0",
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


class Folder:
    """The write side of the reporting service; every method runs in the caller's transaction."""

    def __init__(self, placer: Placer) -> None:
        self.placer = placer
        self.known = KnownBranches()

    async def fold(self, connection: AsyncConnection, changes: Sequence[Change]) -> FoldOutcome:
        """Apply tally changes: value-based last-write-wins per key on ``version``."""
        outcome = FoldOutcome()
        latest, repeated = _latest_per_key(changes)
        if not latest:
            return outcome
        deltas = Deltas()
        branches = await lock_branches(
            connection, self.placer, [k[0] for k in latest], False, deltas, self.known
        )
        plans = {branch_id: self._plans(state) for branch_id, state in branches.items()}
        touched: dict[tuple[str, int], int] = {}
        rows = [(c.branch_id, c.series, c.day, c.value, c.version) for c in latest.values()]
        add = deltas.add
        for branch_id, series, day, old_value, old_version, applied in await upsert_versioned(
            connection, TALLIES, rows, 3
        ):
            key = (branch_id, series, day)
            change = latest[key]
            _count(repeated.get(key) or (change.version,), old_version, outcome)
            if not applied:
                continue
            new_value = change.value
            day_key = (branch_id, day)
            touched[day_key] = touched.get(day_key, 0) | _moved(old_value, new_value)
            delta = new_value - old_value
            if delta:
                legacy, legacy_mapped, v2025, v2025_mapped = plans[branch_id]
                add(legacy, legacy_mapped, series, day, delta)
                add(v2025, v2025_mapped, series, day, delta)
        years = await self._activity(connection, touched, branches)
        await self._write(connection, deltas, years)
        return outcome

    def _plans(self, state: BranchState) -> tuple[Plan, bool, Plan, bool]:
        legacy, v2025 = state.legacy, state.v2025
        plan = self.placer.plan
        return plan("legacy", legacy.anchor), legacy.mapped, plan("2025", v2025.anchor), v2025.mapped

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
        deltas = Deltas()
        held = await lock_branches(connection, self.placer, list(newest), True, deltas)
        winners = [
            reg
            for branch_id, reg in sorted(newest.items())
            if (at := held[branch_id].registered) is None or (utc(reg.time), reg.event_id) > at
        ]
        outcome.skipped["stale_registration"] += len(newest) - len(winners)
        rows, moves = [], []
        for reg in winners:
            state = held[reg.branch.branch_id]
            new = {tree: self.placer.place(tree, reg.branch.branch_id, reg.branch) for tree in TREES}
            rows.append(_branch_row(reg, new["legacy"], new["2025"]))
            for tree in TREES:
                before, after = state.placement(tree), new[tree]
                if (before.anchor, before.mapped) != (after.anchor, after.mapped):
                    deltas.count_branch(self.placer.plan(tree, before.anchor), -1)
                    deltas.count_branch(self.placer.plan(tree, after.anchor), +1)
                    moves.append((before, after))
        await upsert(connection, BRANCHES, rows)
        await self._move_activity(connection, rows)
        await self._move_counts(connection, moves, deltas)
        await self._write(connection, deltas)
        outcome.moved_branches = len({before.branch_id for before, _ in moves})
        return outcome

    async def _move_activity(self, connection: AsyncConnection, rows: Sequence[Row]) -> None:
        """Copy the branches' new placements onto their activity rows."""
        if not rows:
            return
        places = [dict(zip(ACTIVITY_PLACES, activity_places(branch_state(row)), strict=True)) for row in rows]
        assignments = ", ".join(f"{name} = :{name}" for name in ACTIVITY_PLACES)
        await connection.execute(
            text(f"UPDATE reporting_activity SET {assignments} WHERE branch_id = :branch_id"),
            [{"branch_id": row[0], **place} for row, place in zip(rows, places, strict=True)],
        )
        await connection.execute(text("UPDATE reporting_activity_gen SET gen = gen + 1"))

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
                in_list(
                    connection,
                    "SELECT branch_id, series, day, value FROM reporting_tallies "
                    "WHERE branch_id IN :ids AND value <> 0",
                    "ids",
                ),
                {"ids": ids[start : start + 500]},
            )
            for branch_id, series, day, value in result:
                found[branch_id].append((series, day, value))
        return found

    async def _activity(
        self,
        connection: AsyncConnection,
        touched: dict[tuple[str, int], int],
        branches: dict[str, BranchState],
    ) -> list[int]:
        """Set the day bit when a key became positive; clear it when the branch's day emptied.

        The years whose activity rows changed: their generation must rise (in ``_write``)."""
        masks = ActivityMasks()
        maybe_idle: list[tuple[str, int]] = []
        for (branch_id, day), moved in touched.items():
            if moved & _ROSE:
                masks.mark(branch_id, day, True)
            elif moved & _POSITIVE:
                continue
            elif moved & _WAS_POSITIVE:
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
        await upsert(connection, ACTIVITY_SET, masks.set_rows(lambda b: activity_places(branches[b])))
        await self._clear_activity(connection, masks.clear_rows())
        return masks.years()

    async def _clear_activity(self, connection: AsyncConnection, rows: Sequence[Row]) -> None:
        if not rows:
            return
        assignments = ", ".join(f"{m} = {m} & ~CAST(:{m} AS INTEGER)" for m in MONTH_COLUMNS)
        statement = text(f"UPDATE reporting_activity SET {assignments} WHERE branch_id = :b AND year = :y")
        params = [{"b": r[0], "y": r[1], **dict(zip(MONTH_COLUMNS, r[2:], strict=True))} for r in rows]
        await connection.execute(statement, params)

    async def _write(self, connection: AsyncConnection, deltas: Deltas, years: Sequence[int] = ()) -> None:
        """The aggregate rows: first those of communes and districts (two replicas seldom
        meet there), then the rows every replica writes in every batch (``VN``, provinces,
        branch counts, dirty marks, the activity generations).

        A row lock is held until the commit, so the shared rows go last, each table in key
        order: a second replica waits for them only while the first ends its transaction,
        not while it writes ~15,000 other rows (every transaction takes them in the same
        order: no deadlock)."""
        own_months, shared_months = self._by_sharing(deltas.month_rows())
        own_days, shared_days = self._by_sharing(deltas.day_rows())
        await upsert(connection, UNIT_MONTHS, own_months)
        await upsert(connection, UNIT_DAYS, own_days)
        await upsert(connection, UNIT_BRANCHES, deltas.branch_rows())
        await upsert(connection, UNIT_MONTHS, shared_months)
        await upsert(connection, UNIT_DAYS, shared_days)
        await upsert(connection, DIRTY, deltas.dirty_rows())
        await upsert(connection, ACTIVITY_GEN, [(year, 1) for year in years])

    def _by_sharing(self, rows: list[Row]) -> tuple[list[Row], list[Row]]:
        """Aggregate rows (unit, ...) split into (the others, those every replica writes)."""
        split: tuple[list[Row], list[Row]] = ([], [])
        shared = self.placer.is_shared
        for row in rows:
            split[shared(row[0])].append(row)
        return split


TallyKey = tuple[str, int, int]
_ROSE, _POSITIVE, _WAS_POSITIVE = 1, 2, 4
"""How a (branch, day)'s keys moved in a batch: one rose from <= 0 above 0, one ends above 0,
one was above 0 (a bit set of each; the activity bit of the day follows from them)."""


def _moved(old: int, new: int) -> int:
    rose = _ROSE if old <= 0 < new else 0
    return rose | (_POSITIVE if new > 0 else 0) | (_WAS_POSITIVE if old > 0 else 0)


def _latest_per_key(changes: Iterable[Change]) -> tuple[dict[TallyKey, Change], dict[TallyKey, list[int]]]:
    """The highest version per key in the batch, and every version in arrival order of the keys
    that came more than once (most come once: no list for them)."""
    latest: dict[TallyKey, Change] = {}
    repeated: dict[TallyKey, list[int]] = {}
    for change in changes:
        key = (change.branch_id, change.series, change.day)
        held = latest.get(key)
        if held is None:
            latest[key] = change
            continue
        versions = repeated.get(key)
        if versions is None:  # the second arrival: the held change is still the first one
            repeated[key] = [held.version, change.version]
        else:
            versions.append(change.version)
        if change.version > held.version:
            latest[key] = change
    return latest, repeated


def _count(versions: Sequence[int], stored: int, outcome: FoldOutcome) -> None:
    """Count each change as if applied one by one: applied iff above every version before it."""
    highest = stored
    for version in versions:
        if version > highest:
            outcome.applied += 1
            highest = version
        else:
            outcome.skipped["repeated" if version == highest else "stale"] += 1


def _tree(value: str) -> TreeVersion:
    return "legacy" if value == "legacy" else "2025"


def _branch_row(reg: Registration, legacy: PlacementRow, v2025: PlacementRow) -> Row:
    b = reg.branch
    registration = (b.name, b.kind, b.legacy_parent, b.parent_2025, utc(reg.time), reg.event_id)
    return (b.branch_id, *registration, *placement_values(legacy, v2025))


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
        (tree, unit, year, series, kind): (utc(time), eid)
        for tree, unit, year, series, kind, time, eid in rows
    }
    winners = [
        t
        for t in newest.values()
        if (held_at := held.get((t.tree, t.unit_id, t.year, _series(t), t.kind))) is None
        or (utc(t.time), t.event_id) > held_at
    ]
    await upsert(
        connection,
        TARGETS,
        [(t.tree, t.unit_id, t.year, _series(t), t.kind, t.value, utc(t.time), t.event_id) for t in winners],
    )
    return len(winners)


def _series(target: Target) -> int:
    series = series_of(target.metric, target.category)
    if series is None:
        raise ValueError(f"unknown metric/category {target.metric}/{target.category}")
    return series
