"""The answers of the reporting API, as plain dicts, with every refusal as a `Problem`.

Checks, in order: the period (``invalid_period``), the tree (``invalid_tree``), the
metric and category (``invalid_metric``, ``invalid_category``), the unit
(``unknown_unit``, 404), then the caller's scope (``out_of_scope``, 403).

Default tree: the one in force on the period's last day (CONTRACT §1). When the
unit id does not exist in that tree but does in the other (``C06901`` asked for
``2025``), the other tree is used rather than answering 404: ids are unique within
a tree, so this can only pick the unit the caller named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.domain import (
    Period,
    PeriodError,
    UnitRollup,
    lagging_years,
    parse_period,
    report_tree,
)
from services.reporting.domain.attribution import InvalidTreeError
from services.reporting.queries import RollupReader, attainments, snapshot
from services.reporting.series import series_of
from shared.events import TALLY_CATEGORIES, TALLY_METRICS
from shared.http import Problem
from shared.orgtree import TreeVersion, Unit, local_date, tree_in_force
from shared.scope import TokenScope

MAX_LAGGING_YEARS = 50


@dataclass(frozen=True, slots=True)
class Question:
    """A validated rollup question."""

    unit: Unit
    tree: TreeVersion
    period: Period
    metric: str
    category: str
    series: int


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_of(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ReportingReads:
    """Validates questions and assembles answers; each answer is read from one snapshot."""

    def __init__(
        self, engine: AsyncEngine, reader: RollupReader, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.engine, self.reader, self.clock = engine, reader, clock
        self.trees = reader.trees

    def question(
        self, unit_id: str, period: str | None, tree: str | None, metric: str, category: str
    ) -> Question:
        parsed = _period(period)
        chosen = self._tree(unit_id, tree, parsed.default_tree(), lambda: report_tree(parsed, tree))
        if metric not in TALLY_METRICS:
            raise Problem(400, "invalid_metric", f"metric must be one of {', '.join(TALLY_METRICS)}")
        if category not in TALLY_CATEGORIES:
            raise Problem(400, "invalid_category", f"category must be one of {', '.join(TALLY_CATEGORIES)}")
        series = series_of(metric, category)
        assert series is not None
        return Question(self._unit(chosen, unit_id), chosen, parsed, metric, category, series)

    def check_scope(self, scope: TokenScope, unit: Unit, tree: TreeVersion) -> None:
        if not scope.covers(unit.id, tree, self.trees):
            raise Problem(403, "out_of_scope", f"{unit.id} ({tree}) is outside the provinces of this token")

    async def rollup(self, q: Question) -> dict[str, Any]:
        async with snapshot(self.engine) as connection:
            found = await self.reader.rollup(connection, q.tree, q.unit.id, q.period, q.series)
            targets = await self.reader.targets(connection, q.tree, [q.unit.id], q.period.years(), q.series)
        return rollup_answer(q, found, targets.get(q.unit.id, {}), self.clock())

    async def table(self, q: Question) -> tuple[UnitRollup, dict[str, dict[str, int]]]:
        """The unit's rollup and the targets of it and its child units (for exports)."""
        async with snapshot(self.engine) as connection:
            found = await self.reader.rollup(connection, q.tree, q.unit.id, q.period, q.series)
            ids = [q.unit.id, *(c.id for c in found.children if c.level != "branch")]
            targets = await self.reader.targets(connection, q.tree, ids, q.period.years(), q.series)
        return found, targets

    def lagging_question(
        self, unit_id: str, years: int, tree: str | None
    ) -> tuple[Unit, TreeVersion, list[int]]:
        if not 1 <= years <= MAX_LAGGING_YEARS:
            raise Problem(400, "invalid_years", f"years must be 1..{MAX_LAGGING_YEARS}")
        window = list(lagging_years(local_date(self.clock()), years))
        default = tree_in_force(date(window[-1], 12, 31))
        chosen = self._tree(unit_id, tree, default, lambda: default if tree is None else _asked_tree(tree))
        return self._unit(chosen, unit_id), chosen, window

    async def lagging(self, unit: Unit, tree: TreeVersion, window: list[int]) -> dict[str, Any]:
        async with snapshot(self.engine) as connection:
            found = await self.reader.lagging(connection, tree, unit.id, window)
        return {
            "unit": unit_json(unit, tree),
            "years": window,
            "branches": [
                {
                    "id": branch.branch_id,
                    "name": name,
                    "kind": kind,
                    "commune_id": commune,
                    "last_admission": branch.last_admission.isoformat() if branch.last_admission else None,
                }
                for branch, name, kind, commune in found
            ],
        }

    def _tree(
        self, unit_id: str, asked: str | None, default: TreeVersion, resolve: Callable[[], TreeVersion]
    ) -> TreeVersion:
        try:
            chosen = resolve()
        except InvalidTreeError as exc:
            raise Problem(400, "invalid_tree", exc.detail) from None
        if asked is None and unit_id not in self.trees[default]:
            other: TreeVersion = "2025" if default == "legacy" else "legacy"
            if unit_id in self.trees[other]:
                return other
        return chosen

    def _unit(self, tree: TreeVersion, unit_id: str) -> Unit:
        found = self.trees[tree].get(unit_id)
        if found is None:
            raise Problem(404, "unknown_unit", f"{unit_id!r} is not a unit of the {tree} tree")
        return found


def _period(text: str | None) -> Period:
    if not text:
        raise Problem(400, "invalid_period", "period is required: 2024, 2024-H1, 2024-Q2, 2024-05, ...")
    try:
        return parse_period(text)
    except PeriodError as exc:
        raise Problem(400, "invalid_period", exc.detail) from None


def _asked_tree(asked: str | None) -> TreeVersion:
    if asked == "legacy":
        return "legacy"
    if asked == "2025":
        return "2025"
    raise InvalidTreeError(str(asked))


def unit_json(unit: Unit, tree: TreeVersion) -> dict[str, str]:
    return {"id": unit.id, "name": unit.name, "level": unit.level, "tree": tree}


def rollup_answer(q: Question, found: UnitRollup, targets: dict[str, int], now: datetime) -> dict[str, Any]:
    """The contract's rollup object (CONTRACT §3)."""
    return {
        "unit": unit_json(q.unit, q.tree),
        "period": {"from": q.period.start.isoformat(), "to": q.period.end.isoformat()},
        "metric": q.metric,
        "category": q.category,
        "value": found.value,
        "targets": targets_json(targets, found.value),
        "children": [
            {"id": c.id, "name": c.name, "level": c.level, "value": c.value} for c in found.children
        ],
        "unmapped": found.unmapped,
        "reporting": {
            "branches": found.reporting.branches,
            "branches_with_events": found.reporting.branches_with_events,
        },
        "as_of": as_of(now),
    }


def targets_json(targets: dict[str, int], value: int) -> dict[str, dict[str, Any]]:
    """``{"resolution": {"value": 7, "attainment_pct": "128.57"}, ...}``; no pct for a 0 target."""
    answer: dict[str, dict[str, Any]] = {}
    for kind, attainment in attainments(targets, value).items():
        entry: dict[str, Any] = {"value": attainment.value}
        if attainment.attainment_pct is not None:
            entry["attainment_pct"] = attainment.attainment_pct
        answer[kind] = entry
    return answer
