"""A candidate's history replayed [quá trình phát triển đảng viên]: state from its events.

`replay(candidate_id, events)` decides every event from the whole SET received, never
from the order it arrived in; that is what makes the tallies independent of arrival
order (provinces send late and out of order). The rules, in the order they apply:

1. Voids. A `voided` event whose target is known takes it out (`voided`); a second void
   of the same target is applied with no effect; a void naming a void is rejected
   `invalid_transition`; a void naming an unknown event is held until it arrives. A
   void with a `scope` (a province's void of an event the intake had not seen) is
   rejected `out_of_scope` unless its scope holds the target's `place`
   (`shared.scope.admits`; an unknown place is never held): the target keeps counting.
2. Holding. Without a live `sourced` (never received, or voided) every other live event
   is held: categories come from the sourced profile. The park clock of an event runs
   from its arrival, or from the arrival of the void that took the sourced away.
3. The walk. Live events are decided in `CandidateEvent.sort_key` order (event time,
   then lifecycle rank with the drop last, then id), as if they had arrived in time order:
   - a milestone already reached earlier in the walk: `duplicate_milestone` (so the
     earliest-dated event wins, even if it arrives last and displaces a counted one);
   - a second drop: `duplicate_milestone`;
   - a `not_recognised` drop [không được công nhận đảng viên chính thức] counts only for a
     probationary member: after `confirmed`, or dated before a known `admitted`, it is
     `invalid_transition`; with no `admitted` known yet it is held for it (and, like any
     held event, rejected when its park time runs out, here as `invalid_transition`);
   - any event dated strictly after the counted drop: `candidate_dropped`, except the
     `sourced` itself, which is counted and flagged `inconsistent_timeline`;
   - everything else counts.
4. Flags (on counted events, which still count): a milestone whose predecessor is not
   reached, or is dated after it: `inconsistent_timeline`; `confirmed` before
   `probation_due(admitted)`: `probation_too_short`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from services.quota.domain.events import CandidateEvent, Profile
from services.quota.domain.records import Contribution, Decision, Flag, Milestone
from services.quota.domain.state import CandidateState
from services.quota.domain.tally import contribution
from services.quota.domain.timeline import timeline_flags
from services.quota.domain.vocabulary import MILESTONES, EventType, FlagCode, RejectionCode, Status
from shared.scope import UNPLACED, admits

UNKNOWN = RejectionCode.UNKNOWN_CANDIDATE


def _rejected(event: CandidateEvent, code: RejectionCode, detail: str) -> Decision:
    return Decision(event.id, Status.REJECTED, code, detail)


def _held(event: CandidateEvent, detail: str, since: datetime, code: RejectionCode) -> Decision:
    """Held since `since`; `code` is what it gets if still held when its park time runs out."""
    return Decision(event.id, Status.HELD, code, detail, since)


@dataclass
class _Walk:
    """Mutable accumulator private to one `replay` call (the result is frozen)."""

    profile: Profile
    decisions: dict[str, Decision]
    admissions: int  # live `admitted` events, whatever their date
    reached: dict[EventType, Milestone] = field(default_factory=dict)
    dropped: Milestone | None = None
    branch_id: str | None = None
    contributions: list[Contribution] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)

    def step(self, event: CandidateEvent) -> None:
        verdict = self._verdict(event)
        if verdict is None:
            self._count(event)
        else:
            self.decisions[event.id] = verdict

    def _verdict(self, event: CandidateEvent) -> Decision | None:
        """None to count the event, else why not (rejected, or held)."""
        if event.type in self.reached:
            detail = f"{event.type} already reached by {self.reached[event.type].event_id}"
            return _rejected(event, RejectionCode.DUPLICATE_MILESTONE, detail)
        if event.type is EventType.DROPPED:
            return self._drop_verdict(event)
        if self.dropped and event.time > self.dropped.time and event.type is not EventType.SOURCED:
            return _rejected(
                event, RejectionCode.CANDIDATE_DROPPED, f"dated after the drop {self.dropped.event_id}"
            )
        return None

    def _drop_verdict(self, event: CandidateEvent) -> Decision | None:
        if self.dropped:
            return _rejected(
                event, RejectionCode.DUPLICATE_MILESTONE, f"already dropped by {self.dropped.event_id}"
            )
        if event.reason != "not_recognised":
            return None
        if EventType.CONFIRMED in self.reached:
            return _rejected(event, RejectionCode.INVALID_TRANSITION, "not_recognised after confirmed")
        if EventType.ADMITTED in self.reached:
            return None
        if self.admissions:
            return _rejected(event, RejectionCode.INVALID_TRANSITION, "not_recognised dated before admitted")
        waiting = "not_recognised waits for admitted"
        return _held(event, waiting, event.arrived_at, RejectionCode.INVALID_TRANSITION)

    def _count(self, event: CandidateEvent) -> None:
        self.decisions[event.id] = Decision(event.id, Status.APPLIED)
        self.contributions.append(Contribution(event.id, contribution(event, self.profile)))
        self.branch_id = event.to_branch_id if event.type is EventType.TRANSFERRED else event.branch_id
        if event.type is EventType.DROPPED:
            self.dropped = Milestone(f"dropped.{event.reason}", event.time, event.id)
        elif event.type in MILESTONES:
            self.reached[event.type] = Milestone(str(event.type), event.time, event.id)
        if event.type is EventType.SOURCED and self.dropped:
            self.flags.append(Flag(FlagCode.INCONSISTENT_TIMELINE, event.id, "sourced dated after the drop"))


def _decide_voids(by_id: dict[str, CandidateEvent]) -> dict[str, Decision]:
    """Decisions for every void and every event a void took out (earliest void wins)."""
    decided: dict[str, Decision] = {}
    for void in sorted((e for e in by_id.values() if e.type is EventType.VOIDED), key=lambda e: e.sort_key):
        target = by_id.get(str(void.voids))
        if target is None:
            decided[void.id] = _held(void, f"waiting for {void.voids}", void.arrived_at, UNKNOWN)
        elif target.type is EventType.VOIDED:
            decided[void.id] = _rejected(void, RejectionCode.INVALID_TRANSITION, "a void cannot be voided")
        elif void.scope is not None and not admits(void.scope, target.place):
            decided[void.id] = _rejected(void, RejectionCode.OUT_OF_SCOPE, _outside(void, target))
        elif target.id in decided:
            decided[void.id] = Decision(void.id, Status.APPLIED, None, f"{target.id} was already voided")
        else:
            decided[target.id] = Decision(target.id, Status.VOIDED, None, f"voided by {void.id}")
            decided[void.id] = Decision(void.id, Status.APPLIED, None, f"voids {target.id}")
    return decided


def _outside(void: CandidateEvent, target: CandidateEvent) -> str:
    known = target.place not in (None, UNPLACED)
    where = f"lies in {target.place}" if known else "lies in no province known to the quota"
    allowed = " ".join(void.scope or ()) or "none"
    return f"{target.id} {where}, outside the voiding token's provinces ({allowed})"


def _hold(
    live: list[CandidateEvent], by_id: dict[str, CandidateEvent], voids: dict[str, Decision]
) -> list[Decision]:
    """Hold every live event of a candidate without a live `sourced`.

    The clock restarts at the latest void naming a `sourced`: events counted for months
    must not expire the moment their sourced is voided for correction.
    """
    sourced_ids = {e.id for e in by_id.values() if e.type is EventType.SOURCED}
    unsourcing = (
        by_id[i].arrived_at
        for i, d in voids.items()
        if d.status is Status.APPLIED and by_id[i].voids in sourced_ids
    )
    anchor = max(unsourcing, default=None)
    return [_held(e, "waiting for sourced", max(e.arrived_at, anchor or e.arrived_at), UNKNOWN) for e in live]


def replay(candidate_id: str, events: Iterable[CandidateEvent]) -> CandidateState:
    """The state of a candidate given every event kept for it (ids must be unique)."""
    by_id = {e.id: e for e in sorted(events, key=lambda e: e.id)}
    voids = _decide_voids(by_id)
    live = sorted((e for e in by_id.values() if e.id not in voids), key=lambda e: e.sort_key)
    sourced = next((e.profile for e in live if e.type is EventType.SOURCED), None)
    if sourced is None:
        decisions = {d.event_id: d for d in (*voids.values(), *_hold(live, by_id, voids))}
        return CandidateState(candidate_id, tuple(by_id.values()), tuple(decisions[i] for i in by_id))
    admissions = sum(1 for e in live if e.type is EventType.ADMITTED)
    walk = _Walk(sourced, dict(voids), admissions)
    for event in live:
        walk.step(event)
    return CandidateState(
        candidate_id=candidate_id,
        events=tuple(by_id.values()),
        decisions=tuple(walk.decisions[i] for i in by_id),
        contributions=tuple(sorted(walk.contributions, key=lambda c: c.event_id)),
        milestones=tuple(walk.reached[m] for m in MILESTONES if m in walk.reached),
        dropped=walk.dropped,
        branch_id=walk.branch_id,
        profile=sourced,
        flags=tuple(sorted({*walk.flags, *timeline_flags(walk.reached)})),
    )
