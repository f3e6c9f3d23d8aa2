"""Tally changes and reference events for the reporting tests and benchmark, and the model they imply.

`Ledger` issues tally changes the way the quota service does: per (branch, day,
metric, category) key the absolute value and a version rising by one. The model of
what the service must answer is the pure domain's `RollupIndex` fed the same
registrations and changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import orjson

from services.reporting.domain import BranchRegistration, OrgTreesCrossWalk, RollupIndex, TallyChange
from shared.orgtree import load_org_trees

VN = timezone(timedelta(hours=7))


@dataclass(frozen=True, slots=True)
class Tally:
    branch_id: str
    day: date
    metric: str
    category: str
    value: int
    version: int
    delta: int = 0
    source_event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def wire(self) -> dict[str, Any]:
        return {
            "branch_id": self.branch_id,
            "date": self.day.isoformat(),
            "metric": self.metric,
            "category": self.category,
            "delta": self.delta,
            "value": self.value,
            "version": self.version,
            "source_event_id": self.source_event_id,
        }

    def domain(self) -> TallyChange:
        return TallyChange(self.branch_id, self.day, self.metric, self.category, self.value, self.version)


def encode_change(change: Tally) -> tuple[bytes, bytes]:
    return change.branch_id.encode(), orjson.dumps(change.wire())


def encode_event(event: dict[str, Any]) -> tuple[bytes, bytes]:
    data = event["data"]
    key = data.get("branch_id") or data.get("unit_id") or event["id"]
    return str(key).encode(), orjson.dumps(event)


class Ledger:
    """Per key the current count and version, so each change carries the next ones."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, date, str, str], tuple[int, int]] = {}

    def add(
        self, branch_id: str, day: date, metric: str = "admitted", category: str = "all", delta: int = 1
    ) -> Tally:
        key = (branch_id, day, metric, category)
        value, version = self.held.get(key, (0, 0))
        self.held[key] = (value + delta, version + 1)
        return Tally(branch_id, day, metric, category, value + delta, version + 1, delta)

    def admissions(self, branch_id: str, days: Iterable[date], categories: Iterable[str] = ()) -> list[Tally]:
        """One admission per day: the ``all`` key and each extra category's key."""
        found: list[Tally] = []
        for day in days:
            found.append(self.add(branch_id, day))
            found.extend(self.add(branch_id, day, category=c) for c in categories)
        return found


def cloudevent(kind: str, data: dict[str, Any], time: datetime | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/deployments/test",
        "type": f"vn.ketnap.{kind}",
        "time": (time or datetime(2024, 1, 2, 8, tzinfo=VN)).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
        "recordedtime": datetime.now(UTC).isoformat(),
    }


def branch_registered(
    branch_id: str,
    legacy: str | None,
    v2025: str | None = None,
    *,
    name: str | None = None,
    kind: str = "residential",
) -> dict[str, Any]:
    parents = {k: v for k, v in (("legacy", legacy), ("2025", v2025)) if v}
    data = {"branch_id": branch_id, "name": name or f"Chi bộ {branch_id}", "kind": kind, "parents": parents}
    return cloudevent("org.branch_registered", data)


def target_set(
    unit_id: str, year: int, kind: str, value: int, *, tree: str | None = None, time: datetime | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"unit_id": unit_id, "year": year, "kind": kind, "value": value}
    if tree is not None:
        data["tree"] = tree
    return cloudevent("target.set", data, time or datetime(year, 1, 5, 8, tzinfo=VN))


def registration_of(event: dict[str, Any]) -> BranchRegistration:
    data = event["data"]
    return BranchRegistration.of(data["branch_id"], data["parents"], data["name"], data["kind"])


def model(registrations: Iterable[dict[str, Any]], changes: Iterable[Tally]) -> RollupIndex:
    """What the service must answer: the domain's incremental index over the same input."""
    trees = load_org_trees()
    index = RollupIndex(trees, OrgTreesCrossWalk(trees))
    for event in registrations:
        index.register(registration_of(event))
    for change in changes:
        index.apply(change.domain())
    return index
