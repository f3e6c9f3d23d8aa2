"""Builders for quota domain tests: terse candidate events on a fixed calendar."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from services.quota.domain import (
    CandidateEvent,
    CandidateState,
    Decision,
    EventType,
    FlagCode,
    Outcome,
    Profile,
    RejectionCode,
    TallyDelta,
    TallyKey,
    apply,
    fold_deltas,
)

VN = timezone(timedelta(hours=7))
T0 = datetime(2024, 1, 1, 9, tzinfo=VN)
PROFILE = Profile(1995, "female", ("student", "ethnic_minority"))
MALE = Profile(1990, "male", ())


def day(n: float) -> datetime:
    """`n` days after 2024-01-01 09:00 Vietnam time."""
    return T0 + timedelta(days=n)


def ev(
    kind: str,
    eid: str,
    t: float = 0,
    *,
    arrived: float | None = None,
    cand: str = "cand-1",
    branch: str = "B-1",
    **fields: Any,
) -> CandidateEvent:
    """A valid event of `kind` dated day `t` (arrived then unless `arrived` says otherwise)."""
    kind = EventType(kind)
    defaults: dict[str, Any] = {}
    if kind is not EventType.TRANSFERRED and kind is not EventType.VOIDED:
        defaults["branch_id"] = branch
    if kind is EventType.SOURCED:
        defaults["profile"] = PROFILE
    if kind is EventType.DROPPED:
        defaults["reason"] = "moved_away"
    if kind is EventType.TRANSFERRED:
        defaults |= {"from_branch_id": branch, "to_branch_id": "B-2"}
    arrival = day(t if arrived is None else arrived)
    return CandidateEvent(eid, cand, kind, day(t), arrival, **(defaults | fields))


def play(
    events: Iterable[CandidateEvent], state: CandidateState | None = None
) -> tuple[CandidateState, list[Outcome]]:
    """Apply events in the given order; the last state and every outcome."""
    outcomes = []
    for event in events:
        outcome = apply(state, event)
        outcomes.append(outcome)
        state = outcome.state
    assert state is not None
    return state, outcomes


def decided(state: CandidateState, event_id: str) -> Decision:
    found = state.decision(event_id)
    assert found is not None, event_id
    return found


def reached_by(state: CandidateState, milestone: str) -> str | None:
    found = state.milestone(EventType(milestone))
    return found.event_id if found else None


def codes(outcome: Outcome) -> list[tuple[str, RejectionCode]]:
    return [(r.event_id, r.code) for r in outcome.rejections]


def flag_codes(state: CandidateState) -> set[tuple[str, FlagCode]]:
    return {(f.event_id, f.code) for f in state.flags}


def deltas_of(outcomes: Iterable[Outcome]) -> list[TallyDelta]:
    return [d for o in outcomes for d in o.deltas]


def totals(outcomes: Iterable[Outcome]) -> dict[TallyKey, int]:
    """Running tallies a consumer of every outcome's deltas would hold."""
    return fold_deltas(deltas_of(outcomes))


def state_tally(state: CandidateState) -> dict[TallyKey, int]:
    """The tallies the state says it counts (one per contribution key)."""
    return fold_deltas(TallyDelta(k, 1, c.event_id) for c in state.contributions for k in c.keys)


def metric_totals(outcomes: Iterable[Outcome], category: str = "all") -> dict[tuple[str, str], int]:
    """(branch, metric) -> count for one category, dates summed."""
    out: dict[tuple[str, str], int] = {}
    for key, n in totals(outcomes).items():
        if key.category == category:
            out[(key.branch_id, key.metric)] = out.get((key.branch_id, key.metric), 0) + n
    return {k: v for k, v in out.items() if v}
