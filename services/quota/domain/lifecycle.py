"""The candidate lifecycle [quy trình phát triển đảng viên]: apply one event, expire held ones.

    outcome = apply(state_or_None, event)      # persist outcome.state, emit outcome.deltas
    state, rejections = expire_held(state, now, ttl)

`apply` adds the event to the set kept for the candidate and replays it
(`history.replay`, whose docstring states every rule); the outcome is the difference
between the state before and after. Guarantees:
- Idempotent: an event id already kept is a no-op (`duplicate=True`); the same id with
  other content (ignoring `arrived_at`) is rejected `id_conflict` and nothing changes.
- Order-free: the final state, hence the summed tallies, depends only on the set of
  events applied, not on the order they arrived in.
- Exact: `deltas` turn the old tallies into the new ones; a void takes back exactly what
  the voided event counted (its own keys, at its date, branch and categories).
- Retroactive: the outcome may name events other than the incoming one. An early-dated
  milestone displaces a counted later-dated duplicate (which is then rejected
  `duplicate_milestone`, its tally taken back); a late drop rejects events dated after
  it; voiding a drop revives them; a `sourced` releases every held event. Events in a
  valid history (CONTRACT.md order, any arrival order) are never rejected on the way.
Expiry (`expire_held`) never changes a tally: held events count nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.quota.domain.events import CandidateEvent
from services.quota.domain.history import replay
from services.quota.domain.records import Decision, Flag
from services.quota.domain.state import CandidateState
from services.quota.domain.tally import TallyDelta, diff_contributions
from services.quota.domain.vocabulary import RejectionCode, Status

DEFAULT_PARK_TTL = timedelta(days=30)  # KETNAP_PARK_TTL


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event refused for good or for now; it goes to `ketnap.rejected` with `code`."""

    event: CandidateEvent
    code: RejectionCode
    detail: str

    @property
    def event_id(self) -> str:
        return self.event.id


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying one event changed; every tuple is sorted by event id."""

    state: CandidateState
    deltas: tuple[TallyDelta, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    applied: tuple[str, ...] = ()  # took effect now: the event itself, released or revived ones
    held: tuple[str, ...] = ()  # newly held
    voided: tuple[str, ...] = ()  # newly taken out by a void
    flags_added: tuple[Flag, ...] = ()
    flags_removed: tuple[Flag, ...] = ()
    duplicate: bool = False


def _became(before: CandidateState, after: CandidateState, status: Status) -> list[Decision]:
    """Decisions of `after` in `status` that were not so (or not for this code) before."""
    old = {d.event_id: (d.status, d.code) for d in before.decisions}
    return [d for d in after.decisions if d.status is status and old.get(d.event_id) != (status, d.code)]


def _rejections(before: CandidateState, after: CandidateState) -> tuple[Rejection, ...]:
    return tuple(
        Rejection(event, d.code or RejectionCode.INVALID_TRANSITION, d.detail or "")
        for d in _became(before, after, Status.REJECTED)
        if (event := after.event(d.event_id)) is not None
    )


def _ids(before: CandidateState, after: CandidateState, status: Status) -> tuple[str, ...]:
    return tuple(d.event_id for d in _became(before, after, status))


def _outcome(before: CandidateState, after: CandidateState) -> Outcome:
    return Outcome(
        state=after,
        deltas=diff_contributions(before.contribution_map(), after.contribution_map()),
        rejections=_rejections(before, after),
        applied=_ids(before, after, Status.APPLIED),
        held=_ids(before, after, Status.HELD),
        voided=_ids(before, after, Status.VOIDED),
        flags_added=tuple(sorted(set(after.flags) - set(before.flags))),
        flags_removed=tuple(sorted(set(before.flags) - set(after.flags))),
    )


def apply(state: CandidateState | None, event: CandidateEvent) -> Outcome:
    """Apply one candidate event to the candidate's state (None: never seen before)."""
    state = state or CandidateState(event.candidate_id)
    if event.candidate_id != state.candidate_id:
        raise ValueError(f"event {event.id} is for {event.candidate_id}, not {state.candidate_id}")
    kept = state.event(event.id)
    if kept is not None and kept.same_content(event):
        return Outcome(state, duplicate=True)
    if kept is not None:
        conflict = Rejection(event, RejectionCode.ID_CONFLICT, f"{event.id} was kept with other content")
        return Outcome(state, rejections=(conflict,))
    return _outcome(state, replay(state.candidate_id, (*state.events, event)))


def _expired(state: CandidateState, now: datetime, ttl: timedelta) -> set[str]:
    return {
        d.event_id
        for d in state.decisions
        if d.status is Status.HELD and d.held_since is not None and now - d.held_since >= ttl
    }


def _expiry(state: CandidateState, event: CandidateEvent, ttl: timedelta) -> Rejection:
    decision = state.decision(event.id)
    code = decision.code if decision and decision.code else RejectionCode.UNKNOWN_CANDIDATE
    waiting = decision.detail if decision and decision.detail else "held"
    return Rejection(event, code, f"{waiting}: held for {ttl} or longer")


def expire_held(
    state: CandidateState, now: datetime, ttl: timedelta = DEFAULT_PARK_TTL
) -> tuple[CandidateState, tuple[Rejection, ...]]:
    """Drop what has been held `ttl` or longer, rejected with its held decision's code.

    That is `unknown_candidate` for events waiting for a `sourced` or for the event a
    void names, `invalid_transition` for a `not_recognised` drop waiting for `admitted`.
    The expired events leave the state (a replay of them is a new arrival). The result
    may hold no event at all: the edge may then forget the candidate.
    """
    rejections: list[Rejection] = []
    while expired := _expired(state, now, ttl):
        rejections.extend(_expiry(state, e, ttl) for e in state.events if e.id in expired)
        state = replay(state.candidate_id, (e for e in state.events if e.id not in expired))
    return state, tuple(rejections)
