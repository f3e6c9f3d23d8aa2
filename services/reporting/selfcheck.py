"""Periodic self-checks: the sum invariant on a sample, and attainment gauges for VN and provinces.

Invariant [value = Σ children + unmapped]: each round picks a random branch-year
with counts, then samples units of both trees (``VN``, a random province, district
and commune, and the branch's whole chain) and periods (that year, a random month
of it, a random day range from it, this year), reads each rollup from one
snapshot and counts a violation when the sum does not hold. The parts come from
different tables (monthly and daily aggregates, the branches' tallies), so this
checks the stored aggregates against each other, not the arithmetic against itself.

Attainment: ``ketnap_attainment_ratio{tree,unit_id,kind}`` = admitted from 1
January to today / the year's target, for ``VN`` and every province of both trees
that has a target (the label disappears when the target does).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reporting.domain import Period
from services.reporting.metrics import ATTAINMENT, INVARIANT_CHECKS, INVARIANT_VIOLATIONS
from services.reporting.placing import NATIONAL, TREES
from services.reporting.queries import Buckets, RollupReader, snapshot
from services.reporting.series import ADMITTED_ALL
from shared.logging import get_logger
from shared.orgtree import TreeVersion, local_date

log = get_logger(__name__)


class SelfCheck:
    def __init__(
        self,
        engine: AsyncEngine,
        reader: RollupReader,
        *,
        interval_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.engine, self.reader, self.interval_s, self.clock = engine, reader, interval_s, clock
        self.rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._gauged: set[tuple[str, str, str]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="reporting-selfcheck")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.check_invariant()
                await self.update_attainment()
            except Exception as exc:  # database down or busy: next round
                log.warning("reporting self-check failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    async def check_invariant(self) -> int:
        """One sampled round; the number of violations found."""
        today = local_date(self.clock())
        violations = 0
        async with snapshot(self.engine) as connection:
            samples = await self._samples(connection, today)
            for tree, unit_id, period, series in samples:
                found = await self.reader.rollup(connection, tree, unit_id, period, series)
                INVARIANT_CHECKS.inc()
                children = sum(c.value for c in found.children)
                if found.value != children + found.unmapped:
                    violations += 1
                    INVARIANT_VIOLATIONS.inc()
                    log.error(
                        "sum invariant violated",
                        tree=tree,
                        unit_id=unit_id,
                        period=period.label,
                        series=series,
                        value=found.value,
                        children=children,
                        unmapped=found.unmapped,
                    )
        return violations

    async def _samples(
        self, connection: AsyncConnection, today: date
    ) -> list[tuple[TreeVersion, str, Period, int]]:
        busy = await self._busy_branch(connection)
        year = busy[1] if busy else today.year
        periods = [Period.between(date(year, 1, 1), date(year, 12, 31)), self._month(year), self._range(year)]
        if year != today.year:
            periods.append(Period.between(date(today.year, 1, 1), today))
        series = await self._series(connection, busy)
        samples: list[tuple[TreeVersion, str, Period, int]] = []
        for tree in TREES:
            for unit_id in await self._units(connection, tree, busy[0] if busy else None):
                samples.extend((tree, unit_id, period, series) for period in periods)
        return samples

    async def _units(
        self, connection: AsyncConnection, tree: TreeVersion, branch_id: str | None
    ) -> list[str]:
        """VN, a random province, district and commune, and the chain of the busy branch."""
        org = self.reader.trees[tree]
        picks = [NATIONAL]
        for level in ("province", "district", "commune"):
            units = list(org.units(level))
            if units:
                picks.append(self.rng.choice(units).id)
        if branch_id is not None:
            column = "anchor_legacy" if tree == "legacy" else "anchor_2025"
            anchor = await connection.scalar(
                text(f"SELECT {column} FROM reporting_branches WHERE branch_id = :b"), {"b": branch_id}
            )
            if anchor is not None:
                picks += [str(anchor), *(u.id for u in org.ancestors(str(anchor)))]
        return list(dict.fromkeys(picks))

    async def _series(self, connection: AsyncConnection, busy: tuple[str, int] | None) -> int:
        """One of the busy branch's series (so the figures are not all zero), else ``admitted``."""
        if busy is None:
            return ADMITTED_ALL
        rows = await connection.execute(
            text("SELECT DISTINCT series FROM reporting_tallies WHERE branch_id = :b"), {"b": busy[0]}
        )
        found = sorted(int(r[0]) for r in rows)
        return self.rng.choice(found) if found else ADMITTED_ALL

    async def _busy_branch(self, connection: AsyncConnection) -> tuple[str, int] | None:
        """A random (branch, year) with counts: its units and year certainly have figures to check."""
        known = await connection.scalar(text("SELECT count(*) FROM reporting_activity"))
        if not known:
            return None
        row = (
            await connection.execute(
                text(
                    "SELECT branch_id, year FROM reporting_activity "
                    "ORDER BY year, branch_id LIMIT 1 OFFSET :k"
                ),
                {"k": self.rng.randrange(int(known))},
            )
        ).first()
        return None if row is None else (str(row[0]), int(row[1]))

    def _month(self, year: int) -> Period:
        month = self.rng.randrange(1, 13)
        first = date(year, month, 1)
        last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
        return Period.between(first, last)

    def _range(self, year: int) -> Period:
        start = date(year, 1, 1) + timedelta(days=self.rng.randrange(0, 365))
        return Period.between(start, start + timedelta(days=self.rng.randrange(0, 400)))

    async def update_attainment(self) -> None:
        today = local_date(self.clock())
        period = Period.between(date(today.year, 1, 1), today)
        seen: set[tuple[str, str, str]] = set()
        async with snapshot(self.engine) as connection:
            for tree in TREES:
                units = [NATIONAL, *(u.id for u in self.reader.trees[tree].units("province"))]
                sums = await self.reader.sums(connection, tree, units, Buckets.of(period), ADMITTED_ALL)
                targets = await self.reader.targets(connection, tree, units, [today.year], ADMITTED_ALL)
                for unit_id, kinds in targets.items():
                    for kind, target in kinds.items():
                        if target > 0:
                            ATTAINMENT.labels(tree, unit_id, kind).set(sums.total.get(unit_id, 0) / target)
                            seen.add((tree, unit_id, kind))
        for gone in self._gauged - seen:
            with contextlib.suppress(KeyError):
                ATTAINMENT.remove(*gone)
        self._gauged = seen
