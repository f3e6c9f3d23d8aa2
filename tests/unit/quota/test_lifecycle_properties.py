"""Hypothesis properties of the lifecycle: order-free, exact voids, never negative, idempotent."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.quota.domain import (
    DROP_REASONS,
    MILESTONES,
    CandidateEvent,
    CandidateState,
    EventType,
    Profile,
    RejectionCode,
    Status,
    TallyKey,
    apply,
    expire_held,
    fold_deltas,
)
from services.quota.handlers import state_json
from shared.scope import UNPLACED
from tests.unit.quota.factory import MALE, PROFILE, day, ev, metric_totals, play, state_tally, totals

pytestmark = pytest.mark.unit

BRANCHES = ("B-1", "B-2", "B-3")
PROFILES = st.sampled_from([PROFILE, MALE, Profile(1988, "female", ("religious",))])
# Sourced is drawn more often so that most candidates get counted at all.
KINDS = st.sampled_from([EventType.SOURCED, *EventType])
# A void with a scope (a province's void of an event the intake had not seen) and the place
# the edge stamps on the event it names; None is the usual, unscoped case.
SCOPES = st.none() | st.none() | st.sampled_from([(), ("legacy:P10",), ("legacy:P10", "2025:P15"), ("*",)])
PLACES = st.none() | st.sampled_from(["legacy:P10", "2025:P15", "legacy:P22", UNPLACED])


@st.composite
def any_event(draw: st.DrawFn, index: int, pool: int) -> CandidateEvent:
    """Any valid event `e<index>`, dated on a coarse 30-day grid so that ties happen."""
    kind = draw(KINDS)
    fields: dict[str, object] = {"branch": draw(st.sampled_from(BRANCHES))}
    if kind is EventType.SOURCED:
        fields["profile"] = draw(PROFILES)
    if kind is EventType.DROPPED:
        fields["reason"] = draw(st.sampled_from(sorted(DROP_REASONS)))
    if kind is EventType.TRANSFERRED:
        fields["to_branch_id"] = draw(st.sampled_from(BRANCHES))
    if kind is EventType.VOIDED:  # may name itself, another void, or nothing known (e<pool>)
        fields["voids"] = f"e{draw(st.integers(0, pool))}"
        fields["scope"] = draw(SCOPES)
    else:
        fields["place"] = draw(PLACES)
    t = draw(st.integers(0, 30)) * 30
    return ev(kind, f"e{index}", t, arrived=draw(st.integers(0, 1000)), **fields)  # type: ignore[arg-type]


@st.composite
def any_events(draw: st.DrawFn, max_size: int = 9) -> list[CandidateEvent]:
    size = draw(st.integers(1, max_size))
    return [draw(any_event(i, size)) for i in range(size)]


@st.composite
def valid_history(draw: st.DrawFn) -> list[CandidateEvent]:
    """sourced, then milestones in time order, maybe a transfer between, maybe a final drop."""
    reached = draw(st.integers(1, len(MILESTONES)))
    times = sorted(draw(st.lists(st.integers(0, 2000), min_size=reached + 2, max_size=reached + 2)))
    moved_at = draw(st.none() | st.integers(1, reached))
    branch = ["B-1" if moved_at is None or i < moved_at else "B-2" for i in range(reached)]
    events = [ev(m, f"m{i}", times[i], branch=branch[i]) for i, m in enumerate(MILESTONES[:reached])]
    events[0] = replace(events[0], profile=draw(PROFILES))
    if moved_at is not None:
        events.append(ev("transferred", "t", times[moved_at - 1], to_branch_id="B-2"))
    if draw(st.booleans()):
        probationary = reached == MILESTONES.index(EventType.ADMITTED) + 1
        reasons = sorted(DROP_REASONS - (set() if probationary else {"not_recognised"}))
        events.append(ev("dropped", "d", times[-1], branch=branch[-1], reason=draw(st.sampled_from(reasons))))
    return events


@settings(max_examples=300)
@given(events=any_events(), data=st.data())
def test_any_arrival_order_gives_the_same_state_and_tallies(events, data):
    shuffled = data.draw(st.permutations(events))
    state, outcomes = play(events)
    other_state, other_outcomes = play(shuffled)
    assert other_state == state
    assert totals(other_outcomes) == totals(outcomes) == state_tally(state)


@settings(max_examples=200)
@given(history=valid_history(), data=st.data())
def test_valid_history_counts_everything_once_in_any_order(history, data):
    state, outcomes = play(data.draw(st.permutations(history)))
    assert not [r for o in outcomes for r in o.rejections]
    assert state.held == ()
    counts = metric_totals(outcomes)
    for event in history:
        metric = "transferred_in" if event.type is EventType.TRANSFERRED else str(event.type)
        branch = event.to_branch_id if event.type is EventType.TRANSFERRED else event.branch_id
        assert counts[(str(branch), metric)] == 1
    assert {f.code for f in state.flags} <= {"probation_too_short"}


@settings(max_examples=300)
@given(history=any_events(), event=any_event(900, 0))
def test_an_event_then_its_void_nets_to_nothing(history, event):
    if event.type is EventType.VOIDED:  # a void cannot itself be voided (invalid_transition)
        event = ev("admitted", "new", 90)
    event = replace(event, id="new")
    state, _ = play(history)
    counted = apply(state, event)
    voided = apply(counted.state, ev("voided", "undo", 2000, voids="new"))
    assert fold_deltas([*counted.deltas, *voided.deltas]) == {}
    assert state_tally(voided.state) == state_tally(state)


@settings(max_examples=300)
@given(events=any_events(), data=st.data())
def test_tallies_never_go_negative_with_redeliveries_conflicts_and_voids(events, data):
    conflicting = [replace(e, time=e.time + timedelta(days=1)) for e in events]
    sequence = data.draw(st.lists(st.sampled_from(events + conflicting), max_size=25))
    state: CandidateState | None = None
    running: dict[TallyKey, int] = {}
    for event in sequence:
        outcome = apply(state, event)
        state = outcome.state
        running = fold_deltas(outcome.deltas, running)
        assert all(n > 0 for n in running.values())
        assert running == state_tally(state)
        assert all(r.code is not RejectionCode.UNKNOWN_CANDIDATE for r in outcome.rejections)


@settings(max_examples=200)
@given(events=any_events(), data=st.data())
def test_applying_an_event_twice_equals_applying_it_once(events, data):
    once, once_outcomes = play(events)
    redelivered = data.draw(st.lists(st.sampled_from(events), max_size=10))
    twice, twice_outcomes = play([*events, *redelivered])
    assert twice == once
    assert totals(twice_outcomes) == totals(once_outcomes)
    again = apply(once, events[-1])
    assert again.duplicate
    assert (again.state, again.deltas, again.rejections) == (once, (), ())


@settings(max_examples=200)
@given(events=any_events())
def test_state_round_trips_through_json(events):
    state, outcomes = play(events)
    assert CandidateState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert all(json.dumps(d.to_dict()) for o in outcomes for d in o.deltas)


@settings(max_examples=200)
@given(events=any_events())
def test_stored_state_json_is_to_dict(events):
    state, _ = play(events)
    assert state_json(state) == orjson.dumps(state.to_dict()).decode()


@settings(max_examples=200)
@given(events=any_events(), now=st.integers(0, 3000), ttl_days=st.integers(1, 60))
def test_expiry_never_changes_tallies_and_leaves_only_fresh_holds(events, now, ttl_days):
    state, _ = play(events)
    ttl = timedelta(days=ttl_days)
    after, rejections = expire_held(state, day(now), ttl)
    assert state_tally(after) == state_tally(state)
    assert {r.code for r in rejections} <= {RejectionCode.UNKNOWN_CANDIDATE, RejectionCode.INVALID_TRANSITION}
    still_held = [d for d in after.decisions if d.status is Status.HELD]
    assert all(d.held_since and day(now) - d.held_since < ttl for d in still_held)
    assert expire_held(after, day(now), ttl) == (after, ())
    assert {r.event_id for r in rejections}.isdisjoint(e.id for e in after.events)
