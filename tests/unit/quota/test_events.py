"""Domain inputs: validation, replay order, dict round trip and CloudEvent mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.quota.domain import CandidateEvent, EventType, Profile, from_cloudevent
from tests.unit.quota.factory import PROFILE, day, ev

pytestmark = pytest.mark.unit

CONTRACT_EXAMPLE = {
    "specversion": "1.0",
    "id": "0b6f4a52-5f0e-4c1e-9a43-2f7d3b8f1a10",
    "source": "/deployments/quang-ninh",
    "type": "vn.ketnap.candidate.admitted",
    "time": "2024-05-12T09:00:00+07:00",
    "subject": "cand-22-000123",
    "datacontenttype": "application/json",
    "data": {"branch_id": "B-C06901-03"},
}


def test_contract_example_maps_to_a_domain_event():
    arrived = datetime(2024, 5, 13, tzinfo=UTC)
    event = from_cloudevent(CONTRACT_EXAMPLE, arrived)
    assert (event.id, event.candidate_id, event.type, event.branch_id) == (
        "0b6f4a52-5f0e-4c1e-9a43-2f7d3b8f1a10",
        "cand-22-000123",
        EventType.ADMITTED,
        "B-C06901-03",
    )
    assert event.time == datetime(2024, 5, 12, 2, tzinfo=UTC)
    assert event.arrived_at == arrived


def test_cloudevent_data_fields_reach_the_domain():
    envelope = {
        **CONTRACT_EXAMPLE,
        "type": "vn.ketnap.candidate.sourced",
        "time": "2024-05-12T02:00:00Z",
        "data": {
            "branch_id": "B-1",
            "profile": {"birth_year": 2001, "sex": "female", "categories": ["student"]},
        },
    }
    event = from_cloudevent(envelope, day(0))
    assert event.profile == Profile(2001, "female", ("student",))
    transfer = {
        **CONTRACT_EXAMPLE,
        "type": "vn.ketnap.candidate.transferred",
        "data": {"from_branch_id": "B-1", "to_branch_id": "B-2"},
    }
    assert from_cloudevent(transfer, day(0)).to_branch_id == "B-2"
    void = {
        **CONTRACT_EXAMPLE,
        "type": "vn.ketnap.candidate.voided",
        "data": {"voids": "x", "reason": "oops"},
    }
    assert (from_cloudevent(void, day(0)).voids, from_cloudevent(void, day(0)).reason) == ("x", "oops")


@pytest.mark.parametrize("kind", ["vn.ketnap.target.set", "vn.ketnap.candidate.promoted"])
def test_non_candidate_or_unknown_types_are_refused(kind):
    with pytest.raises(ValueError, match=r"target|promoted"):
        from_cloudevent({**CONTRACT_EXAMPLE, "type": kind}, day(0))


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        ("sourced", {"profile": None}),
        ("admitted", {"branch_id": None}),
        ("dropped", {"reason": None}),
        ("transferred", {"to_branch_id": None}),
        ("voided", {"voids": None}),
    ],
)
def test_missing_fields_are_refused(kind, missing):
    with pytest.raises(ValueError, match="missing"):
        ev(kind, "x", **({"voids": "y"} | missing))


def test_unknown_drop_reason_is_refused():
    with pytest.raises(ValueError, match="reason"):
        ev("dropped", "d", reason="bored")


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="offset"):
        CandidateEvent("x", "c", EventType.ADMITTED, datetime(2024, 1, 1), day(0), branch_id="B")


@pytest.mark.parametrize(("sex", "categories"), [("other", ()), ("male", ("pilot",))])
def test_profile_vocabulary_is_closed(sex, categories):
    with pytest.raises(ValueError, match="unknown"):
        Profile(1990, sex, categories)


def test_profile_categories_are_normalised():
    assert Profile(1990, "male", ("youth_union", "student", "student")).categories == (
        "student",
        "youth_union",
    )


def test_same_instant_events_replay_in_lifecycle_order_with_the_drop_last():
    kinds = [
        "dropped",
        "transferred",
        "confirmed",
        "admitted",
        "dossier_verified",
        "class_completed",
        "sourced",
    ]
    events = [ev(k, f"z{i}") for i, k in enumerate(kinds)]
    assert [e.type for e in sorted(events, key=lambda e: e.sort_key)] == list(reversed(kinds))
    assert ev("dropped", "d", 1).sort_key < ev("sourced", "s", 2).sort_key  # time comes first


def test_same_content_ignores_only_arrival_and_the_stamped_place():
    assert ev("admitted", "a", 1, arrived=1).same_content(ev("admitted", "a", 1, arrived=9))
    assert ev("admitted", "a", 1, place="legacy:P10").same_content(ev("admitted", "a", 1))
    assert not ev("admitted", "a", 1).same_content(ev("admitted", "a", 1, branch="B-9"))
    scoped = ev("voided", "x", 1, voids="a", scope=("legacy:P10",))
    assert not scoped.same_content(ev("voided", "x", 1, voids="a"))  # the scope is content


def test_voidscope_reaches_the_domain_as_canonical_entries():
    void = {
        **CONTRACT_EXAMPLE,
        "type": "vn.ketnap.candidate.voided",
        "data": {"voids": "e1", "reason": "typo"},
    }
    arrived = datetime(2024, 5, 13, tzinfo=UTC)
    assert from_cloudevent(void, arrived).scope is None
    event = from_cloudevent({**void, "voidscope": "P22 2025:P15"}, arrived)
    assert event.scope == ("legacy:P22", "2025:P15", "2025:P22")
    assert from_cloudevent({**void, "voidscope": ""}, arrived).scope == ()
    with pytest.raises(ValueError, match="bad scope entry"):
        from_cloudevent({**void, "voidscope": "legacy:X1"}, arrived)


@pytest.mark.parametrize("kind", [k for k in EventType if k is not EventType.VOIDED])
def test_only_a_void_carries_a_scope(kind):
    with pytest.raises(ValueError, match="only a void carries a scope"):
        ev(kind, "x", scope=("legacy:P10",))


@pytest.mark.parametrize("kind", list(EventType))
def test_events_round_trip_through_json(kind):
    event = ev(kind, "x", 3, arrived=4, voids="y")
    assert CandidateEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event
    extra = {"scope": ("legacy:P10", "2025:P15")} if kind is EventType.VOIDED else {"place": "2025:P15"}
    stamped = ev(kind, "x", 3, arrived=4, voids="y", **extra)
    assert CandidateEvent.from_dict(json.loads(json.dumps(stamped.to_dict()))) == stamped
    assert Profile.from_dict(PROFILE.to_dict()) == PROFILE


def test_an_event_stored_before_void_scopes_existed_still_loads():
    stored = {
        k: v for k, v in ev("voided", "x", 3, voids="y").to_dict().items() if k not in ("scope", "place")
    }
    assert CandidateEvent.from_dict(stored) == ev("voided", "x", 3, voids="y")
