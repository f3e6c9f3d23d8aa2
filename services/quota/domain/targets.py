"""Targets [chỉ tiêu] and attainment [tỷ lệ hoàn thành].

A target is keyed by (unit_id, tree, year, metric, category, kind); `kind` is
`resolution` (a self-set resolution target, chỉ tiêu Nghị quyết) or `assigned` (a quota
from the level above, chỉ tiêu cấp trên giao). Rules:
- Latest wins: of the `target.set` events for one key, the one with the greatest
  (time, event id) is in force, so equal times are broken by the larger id and the
  result never depends on arrival order. Re-applying the winner changes nothing.
- Defaults of the wire event: `tree` is the tree in force on the event's local date (the
  contract's rule for every event), `metric` is `admitted`, `category` is `all`.
- `attainment_pct(value, target)` = value / target x 100 rounded half-up to 2 decimals,
  as a string ("128.57"); None when there is no target or it is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from shared.orgtree.dates import local_date, tree_in_force

TARGET_KINDS = frozenset({"resolution", "assigned"})
TREES = frozenset({"legacy", "2025"})


@dataclass(frozen=True, slots=True, order=True)
class TargetKey:
    unit_id: str
    tree: str
    year: int
    metric: str
    category: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS or self.tree not in TREES:
            raise ValueError(f"target kind {self.kind!r} / tree {self.tree!r} not known")


@dataclass(frozen=True, slots=True)
class Target:
    """One `target.set`: `value` for `key`, decided at `time` by event `event_id`."""

    key: TargetKey
    value: int
    time: datetime
    event_id: str
    source_doc: str | None = None

    def __post_init__(self) -> None:
        if self.value < 0 or self.time.utcoffset() is None:
            raise ValueError(f"target {self.event_id}: value must be >= 0 and time carry an offset")

    @property
    def precedence(self) -> tuple[datetime, str]:
        return (self.time, self.event_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.key),
            "value": self.value,
            "time": self.time.isoformat(),
            "event_id": self.event_id,
            "source_doc": self.source_doc,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Target:
        key = TargetKey(**{name: raw[name] for name in TargetKey.__dataclass_fields__})
        time = datetime.fromisoformat(raw["time"])
        return cls(key, int(raw["value"]), time, raw["event_id"], raw.get("source_doc"))


def target_from_cloudevent(envelope: Mapping[str, Any]) -> Target:
    """The domain target of a validated `vn.ketnap.target.set` CloudEvent, defaults filled."""
    data: Mapping[str, Any] = envelope["data"]
    time = datetime.fromisoformat(str(envelope["time"]))
    key = TargetKey(
        unit_id=data["unit_id"],
        tree=data.get("tree") or tree_in_force(local_date(time)),
        year=int(data["year"]),
        metric=data.get("metric") or "admitted",
        category=data.get("category") or "all",
        kind=data["kind"],
    )
    return Target(key, int(data["value"]), time, str(envelope["id"]), data.get("source_doc"))


def latest(current: Target | None, incoming: Target) -> Target:
    """The target in force for `incoming.key` once `incoming` is known."""
    if current is not None and current.key != incoming.key:
        raise ValueError(f"targets {current.event_id} and {incoming.event_id} have different keys")
    if current is None or incoming.precedence > current.precedence:
        return incoming
    return current


def latest_targets(targets: Iterable[Target]) -> dict[TargetKey, Target]:
    """The target in force per key, whatever order `targets` come in."""
    in_force: dict[TargetKey, Target] = {}
    for target in targets:
        in_force[target.key] = latest(in_force.get(target.key), target)
    return in_force


def attainment_pct(value: int, target: int | None) -> str | None:
    """value / target x 100, half-up to 2 decimals ("128.57" for 9/7), None without a target.

    Exact integer arithmetic (no float, no Decimal context precision to run out of).
    """
    if not target:
        return None
    if value < 0 or target < 0:
        raise ValueError("attainment needs non-negative counts")
    hundredths, remainder = divmod(value * 10_000, target)
    if 2 * remainder >= target:
        hundredths += 1
    return f"{hundredths // 100}.{hundredths % 100:02d}"
