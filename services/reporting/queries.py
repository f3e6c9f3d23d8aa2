"""The read side: one unit's rollup, targets, lagging branches, all from one database snapshot.

A period is cut by the domain (`Period.spans`) into whole months (years are 12
months) and single days. Each unit's part comes from the cheapest source that
has it (see `services.reporting.placing`): whole months from
``reporting_unit_months``, single days from ``reporting_unit_days`` (``VN`` and
provinces), anything else from the branches' own tallies, grouped by the unit
they sit at (leaves) or under (districts). Every figure of one answer is read in
one transaction (a snapshot), so ``value == Σ children + unmapped`` holds inside
every answer, not only when quiet.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reporting.bulk import Row
from services.reporting.domain import (
    Attainment,
    Child,
    LaggingBranch,
    Period,
    Reporting,
    UnitRollup,
    UnknownUnitError,
    attainment_pct,
    lagging,
)
from services.reporting.placing import NATIONAL, Placer, columns
from services.reporting.series import ADMITTED_ALL
from services.reporting.tables import MONTH_COLUMNS, TOTAL, UNMAPPED
from services.reporting.unitkeys import keyed
from shared.orgtree import TreeVersion, Unit

BRANCH_LEVEL = "branch"
Ranges = list[tuple[int, int]]


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection whose statements all see one committed state."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                await connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield connection
            return
        await connection.exec_driver_sql("BEGIN")  # SQLite: one read transaction = one WAL snapshot
        try:
            yield connection
        finally:
            await connection.rollback()


@dataclass(frozen=True, slots=True)
class Buckets:
    """A period as ranges of month keys and of day ordinals (each range inclusive)."""

    months: Ranges
    days: Ranges

    @classmethod
    def of(cls, period: Period) -> Buckets:
        spans = period.spans()
        months = sorted({y * 12 + m for y in spans.years for m in range(12)} | set(spans.months))
        return cls(_runs(months), _runs(sorted(spans.days)))


def _runs(values: Sequence[int]) -> Ranges:
    """Consecutive integers merged into inclusive ranges."""
    runs: Ranges = []
    for value in values:
        if runs and runs[-1][1] + 1 == value:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _between(column: str, ranges: Ranges, prefix: str) -> tuple[str, dict[str, int]]:
    """``(col BETWEEN :p0a AND :p0b OR ...)`` and its parameters; ``1 = 0`` for no range."""
    if not ranges:
        return "1 = 0", {}
    parts, params = [], {}
    for i, (low, high) in enumerate(ranges):
        parts.append(f"{column} BETWEEN :{prefix}{i}a AND :{prefix}{i}b")
        params[f"{prefix}{i}a"], params[f"{prefix}{i}b"] = low, high
    return "(" + " OR ".join(parts) + ")", params


def in_list(connection: AsyncConnection, sql: str, name: str = "units", kind: str = "TEXT") -> TextClause:
    """``sql`` whose ``IN :name`` takes a list (of ``kind``): one array parameter on PostgreSQL
    (one plan whatever the list's length: planning a 126-id ``IN`` costs ~5 ms), expanded on SQLite."""
    if connection.dialect.name == "postgresql":
        return text(sql.replace(f"IN :{name}", f"= ANY(CAST(:{name} AS {kind}[]))"))
    return text(sql).bindparams(bindparam(name, expanding=True))


@dataclass(frozen=True, slots=True)
class Sums:
    """Per unit: total and unmapped."""

    total: dict[str, int]
    unmapped: dict[str, int]

    @classmethod
    def empty(cls) -> Sums:
        return cls(defaultdict(int), defaultdict(int))

    def add(self, unit_id: str, part: int, value: int) -> None:
        (self.unmapped if part == UNMAPPED else self.total)[unit_id] += value


class RollupReader:
    """Queries over the reporting tables; every method takes the snapshot's connection."""

    def __init__(self, placer: Placer, cache_size: int = 4096) -> None:
        self.placer = placer
        self.trees = placer.trees
        self.active_cache: OrderedDict[tuple[str, str, date, date], tuple[tuple[Row, ...], int]] = (
            OrderedDict()
        )
        self.cache_size = cache_size

    def unit(self, tree: TreeVersion, unit_id: str) -> Unit:
        found = self.trees[tree].get(unit_id)
        if found is None:
            raise UnknownUnitError(unit_id, tree)
        return found

    async def rollup(
        self, connection: AsyncConnection, tree: TreeVersion, unit_id: str, period: Period, series: int
    ) -> UnitRollup:
        unit = self.unit(tree, unit_id)
        kids = self.trees[tree].children(unit_id)
        buckets = Buckets.of(period)
        sums = await self.sums(connection, tree, [unit_id, *(c.id for c in kids)], buckets, series)
        children = [Child(c.id, c.name, c.level, sums.total.get(c.id, 0)) for c in kids]
        children += await self.branch_children(connection, tree, unit_id, period, series)
        reporting = Reporting(
            await self.branch_count(connection, tree, unit_id),
            await self.active_branches(connection, tree, unit, period),
        )
        return UnitRollup(
            unit.id,
            unit.name,
            unit.level,
            sums.total.get(unit_id, 0),
            sums.unmapped.get(unit_id, 0),
            tuple(children),
            reporting,
        )

    async def sums(
        self,
        connection: AsyncConnection,
        tree: TreeVersion,
        unit_ids: Sequence[str],
        buckets: Buckets,
        series: int,
    ) -> Sums:
        """Total and unmapped of each unit over the buckets, from the cheapest source of each part."""
        sums = Sums.empty()
        placer = self.placer
        monthly = [u for u in unit_ids if placer.keeps_months(tree, u)]
        daily = [u for u in unit_ids if placer.keeps_days(tree, u)]
        from_tallies: dict[tuple[str, tuple[tuple[int, int], ...]], list[str]] = defaultdict(list)
        for unit_id in unit_ids:
            column = "anchor" if placer.is_leaf(tree, unit_id) else "district"
            ranges = [] if unit_id in daily else list(buckets.days)
            if unit_id not in monthly:
                ranges = _month_days(buckets.months) + ranges
            if ranges:
                from_tallies[(column, tuple(_runs_of(ranges)))].append(unit_id)
        await self._aggregate(
            connection, "reporting_unit_months", "month", tree, monthly, buckets.months, series, sums
        )
        await self._aggregate(
            connection, "reporting_unit_days", "day", tree, daily, buckets.days, series, sums
        )
        for (column, runs), units in from_tallies.items():
            await self._tallies(connection, tree, column, units, list(runs), series, sums)
        return sums

    async def _aggregate(
        self,
        connection: AsyncConnection,
        table: str,
        bucket: str,
        tree: TreeVersion,
        unit_ids: Sequence[str],
        ranges: Ranges,
        series: int,
        sums: Sums,
    ) -> None:
        if not unit_ids or not ranges:
            return
        where, params = _between(bucket, ranges, "r")
        units = keyed(tree, unit_ids)
        rows = await connection.execute(
            in_list(
                connection,
                f"SELECT unit, part, sum(value) FROM {table} "
                f"WHERE series = :series AND unit IN :units AND {where} GROUP BY unit, part",
                kind="INTEGER",
            ),
            {"series": series, "units": list(units), **params},
        )
        for unit, part, value in rows:
            sums.add(units[unit], part, int(value))

    async def _tallies(
        self,
        connection: AsyncConnection,
        tree: TreeVersion,
        column: str,
        unit_ids: Sequence[str],
        ranges: Ranges,
        series: int,
        sums: Sums,
    ) -> None:
        """Sums of the branches' own tallies, grouped by the unit they sit at (anchor) or under (district).

        One indexed sum per branch (a correlated subquery), not a join, whose plan rests on
        the tables' statistics: with none (tables never analysed) the join scanned every
        branch, 25 ms against ~1 ms on 1 M tallies, and averaged 0.28 s (up to 5 s) over a
        national replay (docs/reporting.md, "Performance")."""
        cols = columns(tree)
        where, params = _between("t.day", ranges, "r")
        rows = await connection.execute(
            in_list(
                connection,
                f"SELECT b.{cols[column]}, b.{cols['anchor']}, b.{cols['mapped']}, "
                "(SELECT sum(t.value) FROM reporting_tallies t "
                f"WHERE t.branch_id = b.branch_id AND t.series = :series AND {where}) "
                f"FROM reporting_branches b WHERE b.{cols[column]} IN :units",
            ),
            {"series": series, "units": list(unit_ids), **params},
        )
        for unit_id, anchor, mapped, value in rows:
            if value is None:  # nothing counted in the period
                continue
            sums.add(unit_id, TOTAL, int(value))
            if not mapped and anchor == unit_id:
                sums.add(unit_id, UNMAPPED, int(value))

    async def branch_children(
        self, connection: AsyncConnection, tree: TreeVersion, unit_id: str, period: Period, series: int
    ) -> list[Child]:
        """Branches registered directly under the unit, zeros included, by id."""
        cols = columns(tree)
        rows = await connection.execute(
            text(
                "SELECT b.branch_id, b.name, "
                "(SELECT sum(t.value) FROM reporting_tallies t WHERE t.branch_id = b.branch_id "
                " AND t.series = :series AND t.day BETWEEN :start AND :end) "
                f"FROM reporting_branches b WHERE b.{cols['anchor']} = :unit AND b.{cols['mapped']} "
                "ORDER BY b.branch_id"
            ),
            {
                "unit": unit_id,
                "series": series,
                "start": period.start.toordinal(),
                "end": period.end.toordinal(),
            },
        )
        return [Child(b, name or "", BRANCH_LEVEL, int(value or 0)) for b, name, value in rows]

    async def branch_count(self, connection: AsyncConnection, tree: TreeVersion, unit_id: str) -> int:
        found = await connection.scalar(
            text("SELECT n FROM reporting_unit_branches WHERE tree = :tree AND unit_id = :unit"),
            {"tree": tree, "unit": unit_id},
        )
        return int(found or 0)

    def _members(self, tree: TreeVersion, unit: Unit) -> tuple[str, dict[str, Any]]:
        """A condition on ``b`` (``reporting_branches``): its chain in `tree` passes the unit."""
        if unit.id == NATIONAL:
            return "1 = 1", {}
        cols = columns(tree)
        if self.placer.is_leaf(tree, unit.id):
            column = cols["anchor"]
        else:
            column = cols["province"] if unit.level == "province" else cols["district"]
        return f"b.{column} = :unit", {"unit": unit.id}

    async def active_branches(
        self, connection: AsyncConnection, tree: TreeVersion, unit: Unit, period: Period
    ) -> int:
        """Branches under the unit with a positive count on some day of the period.

        Counting distinct branches over any day range means scanning the unit's
        activity rows (~100,000 for ``VN``); the count is cached per (tree, unit,
        period) and reused while ``reporting_activity_gen`` of every year of the
        period is unchanged (the fold bumps it in the transaction that sets a bit),
        read in this same snapshot: a cached count is never stale.
        """
        generations = tuple(
            tuple(row)
            for row in await connection.execute(
                text(
                    "SELECT year, gen FROM reporting_activity_gen WHERE year BETWEEN :a AND :b ORDER BY year"
                ),
                {"a": period.start.year, "b": period.end.year},
            )
        )
        key = (tree, unit.id, period.start, period.end)
        cached = self.active_cache.get(key)
        if cached is not None and cached[0] == generations:
            self.active_cache.move_to_end(key)
            return cached[1]
        found = await self._count_active(connection, tree, unit, period)
        self.active_cache[key] = (generations, found)
        if len(self.active_cache) > self.cache_size:
            self.active_cache.popitem(last=False)
        return found

    async def _count_active(
        self, connection: AsyncConnection, tree: TreeVersion, unit: Unit, period: Period
    ) -> int:
        members, params = self._members(tree, unit)
        condition, bits = _activity_condition(period)
        counted = "count(*)" if period.start.year == period.end.year else "count(DISTINCT a.branch_id)"
        on_activity = members.replace("b.", "a.")  # the placement is copied on the activity rows
        found = await connection.scalar(
            text(f"SELECT {counted} FROM reporting_activity a WHERE {condition} AND {on_activity}"),
            {**params, **bits},
        )
        return int(found or 0)

    async def targets(
        self,
        connection: AsyncConnection,
        tree: TreeVersion,
        unit_ids: Sequence[str],
        years: Sequence[int],
        series: int,
    ) -> dict[str, dict[str, int]]:
        """Per unit and kind, the sum of the targets of the years (absent: no target in any year)."""
        rows = await connection.execute(
            in_list(
                connection,
                "SELECT unit_id, kind, sum(value) FROM reporting_targets WHERE tree = :tree "
                "AND unit_id IN :units AND series = :series AND year BETWEEN :first AND :last "
                "GROUP BY unit_id, kind",
            ),
            {
                "tree": tree,
                "units": list(unit_ids),
                "series": series,
                "first": min(years),
                "last": max(years),
            },
        )
        found: dict[str, dict[str, int]] = defaultdict(dict)
        for unit_id, kind, value in rows:
            found[unit_id][kind] = int(value)
        return found

    async def lagging(
        self, connection: AsyncConnection, tree: TreeVersion, unit_id: str, years: Sequence[int]
    ) -> list[tuple[LaggingBranch, str, str | None, str | None]]:
        """Registered branches under the unit with no admission in `years`: (branch, name, kind, commune)."""
        unit = self.unit(tree, unit_id)
        members, params = self._members(tree, unit)
        cols = columns(tree)
        end = date(max(years), 12, 31).toordinal()
        rows = await connection.execute(
            text(
                f"SELECT b.branch_id, b.name, b.kind, b.{cols['anchor']}, b.{cols['mapped']}, "
                "(SELECT max(t.day) FROM reporting_tallies t WHERE t.branch_id = b.branch_id "
                " AND t.series = :series AND t.value > 0 AND t.day <= :end) "
                f"FROM reporting_branches b WHERE {members} AND b.registered_at IS NOT NULL"
            ),
            {**params, "series": ADMITTED_ALL, "end": end},
        )
        info: dict[str, tuple[str, str | None, str | None]] = {}
        last: dict[str, date] = {}
        for branch_id, name, kind, anchor, mapped, day in rows:
            info[branch_id] = (name or "", kind, anchor if mapped else None)
            if day is not None:
                last[branch_id] = date.fromordinal(int(day))
        return [(b, *info[b.branch_id]) for b in lagging(info, last, years)]


def attainments(targets: dict[str, int], value: int) -> dict[str, Attainment]:
    """The answer's ``targets`` object: each kind with a target, and the attainment."""
    return {
        kind: Attainment(targets[kind], attainment_pct(value, targets[kind]))
        for kind in ("resolution", "assigned")
        if kind in targets
    }


def _activity_condition(period: Period) -> tuple[str, dict[str, int]]:
    """SQL over ``reporting_activity a``: some day bit of the period is set."""
    parts, params = [], {}
    for year in period.years():
        first = max(period.start, date(year, 1, 1))
        last = min(period.end, date(year, 12, 31))
        checks = []
        for month in range(first.month, last.month + 1):
            mask = _day_mask(year, month, first, last)
            column = MONTH_COLUMNS[month - 1]
            if mask == _FULL_MONTH[(year, month)]:
                checks.append(f"a.{column} <> 0")
            else:
                name = f"b{year}_{month}"
                params[name] = mask
                checks.append(f"(a.{column} & :{name}) <> 0")
        params[f"y{year}"] = year
        parts.append(f"(a.year = :y{year} AND ({' OR '.join(checks)}))")
    return "(" + " OR ".join(parts) + ")", params


class _FullMonths(dict[tuple[int, int], int]):
    def __missing__(self, key: tuple[int, int]) -> int:
        year, month = key
        days = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days
        self[key] = (1 << days) - 1
        return self[key]


_FULL_MONTH = _FullMonths()


def _day_mask(year: int, month: int, first: date, last: date) -> int:
    """Bits of the days of (year, month) that lie in first..last."""
    full = _FULL_MONTH[(year, month)]
    low = first.day if (first.year, first.month) == (year, month) else 1
    high = last.day if (last.year, last.month) == (year, month) else full.bit_length()
    return full & ~((1 << (low - 1)) - 1) & ((1 << high) - 1)


def _month_days(months: Ranges) -> Ranges:
    """Month-key ranges as day-ordinal ranges."""
    return [(_first_day(low).toordinal(), _first_day(high + 1).toordinal() - 1) for low, high in months]


def _first_day(key: int) -> date:
    return date(key // 12, key % 12 + 1, 1)


def _runs_of(ranges: Ranges) -> Ranges:
    """Sorted ranges with touching ones merged."""
    merged: Ranges = []
    for low, high in sorted(ranges):
        if merged and merged[-1][1] + 1 >= low:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged
