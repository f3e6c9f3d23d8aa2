"""A candidate's state [hồ sơ quần chúng]: the events received and what was decided.

`CandidateState` is a pure function of the set of events received for the candidate
(`history.replay` computes it); everything but `events` is derived and stored so the
edge can persist and query it without calling the domain. It round-trips through
plain JSON-able dicts: `CandidateState.from_dict(s.to_dict()) == s`.

Every kept event has exactly one `Decision`:
- `applied`: in effect (a counted milestone, drop or transfer; a void that took effect);
- `voided`: taken back by an applied `voided` event;
- `held`: waiting, since `held_since`, for the candidate's `sourced`, for the event a
  void names, or (a `not_recognised` drop) for `admitted`; `code` is what it will be
  rejected with if still held when its park time runs out;
- `rejected`: with a `RejectionCode`; kept because a later event can revive it (e.g. the
  void of the drop that rejected it).
Only `applied` events have a `Contribution`: the tally keys they count on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.quota.domain.events import CandidateEvent, Profile
from services.quota.domain.records import Contribution, Decision, Flag, Milestone
from services.quota.domain.tally import TallyKey
from services.quota.domain.vocabulary import MILESTONES, EventType, Status


@dataclass(frozen=True, slots=True)
class CandidateState:
    """Events sorted by id, one decision each (same order), derived views of the history.

    `milestones` are in lifecycle order; `branch_id` is the branch of the latest applied
    event (the `to_branch_id` of a transfer); `profile` comes from the counted `sourced`.
    """

    candidate_id: str
    events: tuple[CandidateEvent, ...] = ()
    decisions: tuple[Decision, ...] = ()
    contributions: tuple[Contribution, ...] = ()
    milestones: tuple[Milestone, ...] = ()
    dropped: Milestone | None = None
    branch_id: str | None = None
    profile: Profile | None = None
    flags: tuple[Flag, ...] = ()

    def event(self, event_id: str) -> CandidateEvent | None:
        return next((e for e in self.events if e.id == event_id), None)

    def decision(self, event_id: str) -> Decision | None:
        return next((d for d in self.decisions if d.event_id == event_id), None)

    def milestone(self, name: EventType) -> Milestone | None:
        return next((m for m in self.milestones if m.name == name), None)

    @property
    def held(self) -> tuple[CandidateEvent, ...]:
        held_ids = {d.event_id for d in self.decisions if d.status is Status.HELD}
        return tuple(e for e in self.events if e.id in held_ids)

    @property
    def drop_reason(self) -> str | None:
        return self.dropped.name.removeprefix("dropped.") if self.dropped else None

    @property
    def stage(self) -> str | None:
        """`dropped`, else the highest milestone reached, else None (nothing counted yet)."""
        if self.dropped:
            return "dropped"
        reached = {m.name for m in self.milestones}
        return next((str(m) for m in reversed(MILESTONES) if m in reached), None)

    def contribution_map(self) -> dict[str, tuple[TallyKey, ...]]:
        return {c.event_id: c.keys for c in self.contributions}

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate_id": self.candidate_id,
            "events": [e.to_dict() for e in self.events],
            "decisions": [d.to_dict() for d in self.decisions],
            "contributions": [c.to_dict() for c in self.contributions],
            "milestones": [m.to_dict() for m in self.milestones],
            "dropped": self.dropped.to_dict() if self.dropped else None,
            "branch_id": self.branch_id,
            "profile": self.profile.to_dict() if self.profile else None,
            "flags": [f.to_dict() for f in self.flags],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CandidateState:
        return cls(
            candidate_id=raw["candidate_id"],
            events=tuple(CandidateEvent.from_dict(e) for e in raw["events"]),
            decisions=tuple(Decision.from_dict(d) for d in raw["decisions"]),
            contributions=tuple(Contribution.from_dict(c) for c in raw["contributions"]),
            milestones=tuple(Milestone.from_dict(m) for m in raw["milestones"]),
            dropped=Milestone.from_dict(raw["dropped"]) if raw.get("dropped") else None,
            branch_id=raw.get("branch_id"),
            profile=Profile.from_dict(raw["profile"]) if raw.get("profile") else None,
            flags=tuple(Flag.from_dict(f) for f in raw["flags"]),
        )
