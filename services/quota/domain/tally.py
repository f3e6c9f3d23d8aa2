"""Tally arithmetic [số liệu thống kê]: what each counted event adds, and sums of deltas.

A tally is a count per `TallyKey` = (branch_id, local date, metric, category); the local
date is the event time in Asia/Ho_Chi_Minh (`shared.orgtree.dates.local_date`).

One counted event contributes +1 to each of its keys (`contribution`):
- milestone `m` at `branch_id`: metric `m`;
- `dropped`: metrics `dropped` and `dropped.<reason>` at `branch_id`;
- `transferred`: `transferred_out` at `from_branch_id`, `transferred_in` at `to_branch_id`;
- `voided`: nothing itself (it takes the voided event's contribution away);
each for the categories `categories_of(profile)`: `all`, `female` if so, and every
profile category. A key appears at most once in one event's contribution.

Invariant: a tally is the number of counted events contributing to its key, so as long
as the deltas emitted are exactly `diff_contributions(before, after)` the running sum
(`fold_deltas`) is never negative.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.quota.domain.events import CandidateEvent, Profile
from services.quota.domain.vocabulary import DROP_REASONS, MILESTONES, PROFILE_CATEGORIES, EventType
from shared.orgtree.dates import local_date

ALL = "all"
FEMALE = "female"
TRANSFERRED_IN = "transferred_in"
TRANSFERRED_OUT = "transferred_out"
METRICS: tuple[str, ...] = (
    *(str(m) for m in MILESTONES),
    "dropped",
    *sorted(f"dropped.{reason}" for reason in DROP_REASONS),
    TRANSFERRED_IN,
    TRANSFERRED_OUT,
)
CATEGORIES: tuple[str, ...] = (ALL, FEMALE, *PROFILE_CATEGORIES)


@dataclass(frozen=True, slots=True, order=True)
class TallyKey:
    """Where a count lives: one branch, one local day, one metric, one category."""

    branch_id: str
    date: date
    metric: str
    category: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch_id": self.branch_id,
            "date": self.date.isoformat(),
            "metric": self.metric,
            "category": self.category,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TallyKey:
        return cls(raw["branch_id"], date.fromisoformat(raw["date"]), raw["metric"], raw["category"])


@dataclass(frozen=True, slots=True)
class TallyDelta:
    """A change of one tally; `event_id` is the counted event whose contribution moved."""

    key: TallyKey
    delta: int
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.key.to_dict(), "delta": self.delta, "event_id": self.event_id}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TallyDelta:
        return cls(TallyKey.from_dict(raw), int(raw["delta"]), raw["event_id"])


def categories_of(profile: Profile) -> tuple[str, ...]:
    """`all`, then `female` for a woman, then the profile's own categories."""
    return (ALL, *((FEMALE,) if profile.sex == FEMALE else ()), *profile.categories)


def _placements(event: CandidateEvent) -> tuple[tuple[str, str], ...]:
    """(branch_id, metric) pairs an event counts on, before categories."""
    if event.type is EventType.TRANSFERRED:
        return ((str(event.from_branch_id), TRANSFERRED_OUT), (str(event.to_branch_id), TRANSFERRED_IN))
    if event.type is EventType.DROPPED:
        return ((str(event.branch_id), "dropped"), (str(event.branch_id), f"dropped.{event.reason}"))
    if event.type is EventType.VOIDED:
        return ()
    return ((str(event.branch_id), str(event.type)),)


def contribution(event: CandidateEvent, profile: Profile) -> tuple[TallyKey, ...]:
    """The keys a counted event adds one to, at its own time, branch and categories."""
    day = local_date(event.time)
    return tuple(
        TallyKey(branch, day, metric, category)
        for branch, metric in _placements(event)
        for category in categories_of(profile)
    )


def diff_contributions(
    before: Mapping[str, tuple[TallyKey, ...]], after: Mapping[str, tuple[TallyKey, ...]]
) -> tuple[TallyDelta, ...]:
    """Deltas turning the tallies of `before` into those of `after` (event id -> keys).

    An event only in `before` is taken back exactly (its own keys, negated); sorted by
    (event id, key) so the result is deterministic.
    """
    deltas: list[TallyDelta] = []
    for event_id in sorted(before.keys() | after.keys()):
        change = Counter(after.get(event_id, ()))
        change.subtract(before.get(event_id, ()))
        deltas.extend(TallyDelta(key, n, event_id) for key, n in sorted(change.items()) if n)
    return tuple(deltas)


def fold_deltas(
    deltas: Iterable[TallyDelta], base: Mapping[TallyKey, int] | None = None
) -> dict[TallyKey, int]:
    """Sum deltas per key onto `base`; keys summing to zero are left out."""
    totals: Counter[TallyKey] = Counter(base or {})
    for delta in deltas:
        totals[delta.key] += delta.delta
    return {key: n for key, n in totals.items() if n}
