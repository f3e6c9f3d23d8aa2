"""The peer benchmark's Quix job, step by step without a broker: holds, once-only milestones, sums."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from benchmarks import peer
from shared.events import Envelope, parse_data

pytestmark = pytest.mark.unit


class FakeState:
    """Quix's per-key state as the steps use it; values go through JSON as in the real store."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return orjson.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        self.data[key] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def event(milestone: str, time: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": f"vn.ketnap.candidate.{milestone}",
        "time": time,
        "subject": "cand-1",
        "data": {"branch_id": "B-C06901-01", **data},
    }


SOURCED = event(
    "sourced",
    "2024-03-01T09:00:00+07:00",
    "e1",
    profile={"birth_year": 2000, "sex": "female", "categories": ["youth_union"]},
)


def test_events_before_sourced_are_held_then_released_in_time_order() -> None:
    state = FakeState()
    later = event("dossier_verified", "2024-05-01T09:00:00+07:00", "e3")
    earlier = event("class_completed", "2024-04-01T09:00:00+07:00", "e2")
    assert peer.count_candidate_event(later, state) == []
    assert peer.count_candidate_event(earlier, state) == []
    bundles = peer.count_candidate_event(SOURCED, state)
    assert [b["event_id"] for b in bundles] == ["e1", "e2", "e3"]
    assert bundles[0]["categories"] == ["all", "female", "youth_union"]
    assert state.get("held") is None


def test_a_milestone_counts_once_and_a_second_sourced_nothing() -> None:
    state = FakeState()
    peer.count_candidate_event(SOURCED, state)
    admitted = event("admitted", "2024-06-01T09:00:00+07:00", "e4")
    assert len(peer.count_candidate_event(admitted, state)) == 1
    assert peer.count_candidate_event({**admitted, "id": "e5"}, state) == []
    assert peer.count_candidate_event({**SOURCED, "id": "e6"}, state) == []


def test_the_date_is_vietnams_local_date() -> None:
    state = FakeState()
    peer.count_candidate_event(SOURCED, state)
    late_utc = event("class_completed", "2024-06-30T17:30:00Z", "e7")
    assert peer.count_candidate_event(late_utc, state)[0]["date"] == "2024-07-01"


def test_tallies_carry_the_new_value_and_a_rising_version() -> None:
    state = FakeState()
    bundle = {
        "branch_id": "B",
        "date": "2024-03-01",
        "metric": "sourced",
        "categories": ["all"],
        "event_id": "x",
    }
    first, second = peer.tally_branch(bundle, state), peer.tally_branch({**bundle, "event_id": "y"}, state)
    assert (first[0]["value"], first[0]["version"]) == (1, 1)
    assert (second[0]["value"], second[0]["version"], second[0]["source_event_id"]) == (2, 2, "y")


def test_the_feed_is_deterministic_and_valid_on_the_wire() -> None:
    feed = peer.make_feed(500, seed=3)
    assert feed.events == peer.make_feed(500, seed=3).events
    assert len(feed.events) == 500
    for raw in [*feed.reference, *feed.events]:
        envelope = Envelope.model_validate_json(orjson.dumps(raw))
        parse_data(envelope.type, envelope.data)
    late = [e for e in feed.events if e["type"].endswith("class_completed")]
    assert late, "the feed should reach past sourced"


def replay_steps(feed: peer.Feed) -> tuple[dict[tuple[str, ...], int], dict[tuple[str, ...], int]]:
    """The job's three stateful steps with one state per message key, as Quix partitions them."""
    stores: dict[tuple[str, str], FakeState] = defaultdict(FakeState)
    branch: dict[tuple[str, ...], int] = {}
    province: dict[tuple[str, ...], int] = {}
    for e in feed.events:
        for bundle in peer.count_candidate_event(e, stores[("candidate", e["subject"])]):
            bundle = {**bundle, "province": feed.provinces[bundle["branch_id"]]}
            for c in peer.tally_branch(bundle, stores[("branch", bundle["branch_id"])]):
                branch[(c["branch_id"], c["date"], c["metric"], c["category"])] = c["value"]
            for c in peer.tally_province(bundle, stores[("province", bundle["province"])]):
                province[(c["province"], c["date"], c["metric"], c["category"])] = c["value"]
    return branch, province


def test_the_job_ends_with_the_feeds_tallies_and_provinces_sum_their_branches() -> None:
    feed = peer.make_feed(3000, seed=5)
    branch, province = replay_steps(feed)
    expected = peer.expected_tallies(feed)
    assert branch == dict(expected)
    sums: Counter[tuple[str, ...]] = Counter()
    for (b, day, metric, category), value in expected.items():
        sums[(feed.provinces[b], day, metric, category)] += value
    assert province == dict(sums)
    assert peer.counted_events(feed) == sum(v for (_, _, _, c), v in expected.items() if c == "all")
