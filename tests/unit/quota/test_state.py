"""CandidateState views and persistence."""

from __future__ import annotations

import json

import pytest

from services.quota.domain import CandidateState, Status, replay
from tests.unit.quota.factory import PROFILE, ev, play

pytestmark = pytest.mark.unit

HISTORY = [
    ev("sourced", "s", 0),
    ev("admitted", "a", 90),
    ev("admitted", "a2", 95),
    ev("voided", "x", 99, voids="nothing-yet"),
    ev("dropped", "d", 100, reason="declined"),
    ev("confirmed", "f", 200),
]


def test_state_is_the_replay_of_its_events():
    state, _ = play(HISTORY)
    assert replay(state.candidate_id, reversed(state.events)) == state


def test_views_of_a_rich_state():
    state, _ = play(HISTORY)
    assert [e.id for e in state.events] == ["a", "a2", "d", "f", "s", "x"]
    assert [d.event_id for d in state.decisions] == [e.id for e in state.events]
    assert {d.event_id: d.status for d in state.decisions} == {
        "a": Status.APPLIED,
        "a2": Status.REJECTED,
        "d": Status.APPLIED,
        "f": Status.REJECTED,
        "s": Status.APPLIED,
        "x": Status.HELD,
    }
    assert (state.stage, state.drop_reason, state.branch_id, state.profile) == (
        "dropped",
        "declined",
        "B-1",
        PROFILE,
    )
    assert [e.id for e in state.held] == ["x"]
    assert set(state.contribution_map()) == {"a", "d", "s"}


def test_state_round_trips_through_plain_json():
    state, _ = play(HISTORY)
    raw = json.loads(json.dumps(state.to_dict()))
    assert CandidateState.from_dict(raw) == state
    assert raw["decisions"][1] == {
        "event_id": "a2",
        "status": "rejected",
        "code": "duplicate_milestone",
        "detail": "admitted already reached by a",
        "held_since": None,
    }


def test_empty_state_round_trips():
    assert CandidateState.from_dict(CandidateState("c").to_dict()) == CandidateState("c")
