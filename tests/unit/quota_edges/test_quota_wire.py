"""The quota edge's translation: records to domain inputs or poison, outgoing messages to their schemas."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from services.quota import wire
from services.quota.cache import StateCache
from services.quota.domain import CandidateState, EventType, apply
from services.quota.handlers import candidate_row
from shared.consumer import recorded_at
from shared.messages import Rejection, TallyChange

pytestmark = pytest.mark.unit

VN = timezone(timedelta(hours=7))


class Rec:
    def __init__(
        self, value: bytes, key: bytes | None = b"k", headers: tuple = (), timestamp: int = 0
    ) -> None:
        self.topic, self.partition, self.offset, self.timestamp = "ketnap.candidate-events", 2, 7, timestamp
        self.key, self.value, self.headers = key, value, headers


def event(kind: str = "candidate.sourced", **data: object) -> dict:
    body: dict = {"branch_id": "B-C06901-03", **data}
    if kind == "candidate.sourced" and "profile" not in data:
        body["profile"] = {"birth_year": 2001, "sex": "female", "categories": ["youth_union", "student"]}
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/deployments/quang-ninh",
        "type": f"vn.ketnap.{kind}",
        "time": "2024-05-12T09:00:00+07:00",
        "subject": "cand-22-000123",
        "data": body,
        "recordedtime": "2024-05-12T02:00:01+00:00",
    }


def test_a_candidate_event_becomes_its_domain_input() -> None:
    decoded = wire.decode(Rec(orjson.dumps(event())), None)
    assert isinstance(decoded, wire.Decoded)
    domain = wire.candidate_event(decoded)
    assert (domain.id, domain.candidate_id, domain.type, domain.branch_id) == (
        "e-1",
        "cand-22-000123",
        EventType.SOURCED,
        "B-C06901-03",
    )
    assert domain.profile is not None
    assert domain.profile.categories == ("student", "youth_union")
    assert domain.arrived_at == datetime(2024, 5, 12, 2, 0, 1, tzinfo=UTC)


def test_without_recordedtime_the_park_clock_starts_at_the_record_timestamp() -> None:
    raw = {k: v for k, v in event("candidate.admitted").items() if k != "recordedtime"}
    decoded = wire.decode(Rec(orjson.dumps(raw), timestamp=1_700_000_000_000), None)
    assert isinstance(decoded, wire.Decoded)
    assert wire.candidate_event(decoded).arrived_at == datetime.fromtimestamp(1_700_000_000, UTC)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"{not json", "invalid_schema"),
        (b"[1, 2]", "invalid_schema"),
        (orjson.dumps({**event(), "specversion": "0.3"}), "invalid_schema"),
        (orjson.dumps(event(full_name="Nguyễn Văn A")), "invalid_schema"),
        (orjson.dumps({**event(), "type": "vn.ketnap.candidate.promoted"}), "unknown_type"),
        (orjson.dumps({**event("target.set"), "subject": None}), "unknown_type"),
        (orjson.dumps({k: v for k, v in event().items() if k != "subject"}), "invalid_schema"),
    ],
)
def test_poison_is_named_never_raised(value: bytes, code: str) -> None:
    decoded = wire.decode(Rec(value), None)
    assert isinstance(decoded, wire.Poison)
    assert decoded.code == code
    assert decoded.detail


def void(**extra: object) -> dict:
    return {**event("candidate.voided"), "data": {"voids": "e-0", "reason": "typo"}, **extra}


def test_a_voidscope_reaches_the_domain_void_through_the_models() -> None:
    decoded = wire.decode(Rec(orjson.dumps(void(voidscope="legacy:P10 2025:P15"))), None)
    assert isinstance(decoded, wire.Decoded)
    assert not decoded.plain  # an extension the fast reader does not know: the models read it
    assert wire.candidate_event(decoded).scope == ("legacy:P10", "2025:P15")
    plain = wire.decode(Rec(orjson.dumps(void())), None)
    assert isinstance(plain, wire.Decoded)
    assert plain.plain
    assert wire.candidate_event(plain).scope is None


@pytest.mark.parametrize(
    "bad",
    [
        void(voidscope="legacy:P1"),
        void(voidscope="VN"),
        void(voidscope=["legacy:P10"]),
        {**event("candidate.admitted"), "voidscope": "legacy:P10"},
    ],
)
def test_a_voidscope_that_is_not_a_scope_or_not_on_a_void_is_invalid_schema(bad: dict) -> None:
    decoded = wire.decode(Rec(orjson.dumps(bad)), None)
    assert isinstance(decoded, wire.Poison)
    assert decoded.code == "invalid_schema"
    assert "voidscope" in decoded.detail


def test_the_digest_counts_the_voidscope() -> None:
    assert wire.digest(void(voidscope="legacy:P10")) != wire.digest(void())


def test_a_rebuilt_scoped_void_keeps_its_scope() -> None:
    decoded = wire.decode(Rec(orjson.dumps(void(voidscope="P22"))), None)
    assert isinstance(decoded, wire.Decoded)
    rebuilt = wire.wire_event(wire.candidate_event(decoded))
    assert rebuilt["voidscope"] == "legacy:P22 2025:P22"  # the domain keeps no reason to rebuild


def test_poison_without_an_id_is_keyed_by_the_record() -> None:
    poison = wire.decode(Rec(b"garbage", key=None), None)
    assert isinstance(poison, wire.Poison)
    assert (poison.key, poison.event) == ("ketnap.candidate-events/2/7", "garbage")


def test_reference_types_are_accepted_only_where_asked() -> None:
    target = {
        **event("target.set"),
        "data": {"unit_id": "P22", "year": 2024, "kind": "resolution", "value": 7},
    }
    assert isinstance(wire.decode(Rec(orjson.dumps(target)), frozenset({wire.TARGET_SET})), wire.Decoded)
    assert isinstance(wire.decode(Rec(orjson.dumps(event())), frozenset({wire.TARGET_SET})), wire.Poison)


@given(st.datetimes(timezones=st.just(UTC)))
def test_the_digest_ignores_recordedtime_only(recorded: datetime) -> None:
    base = event()
    assert wire.digest({**base, "recordedtime": recorded.isoformat()}) == wire.digest(base)
    assert wire.digest({**base, "time": "2024-05-13T09:00:00+07:00"}) != wire.digest(base)
    reordered = dict(reversed(list(base.items())))
    assert wire.digest(reordered) == wire.digest(base)


def test_outgoing_messages_match_their_wire_schemas() -> None:
    change = wire.tally_change(
        ("B-1", date(2024, 5, 12), "admitted", "all"), -1, 4, 9, "e-7", "2024-05-12T02:00Z"
    )
    assert change.key == b"B-1"
    assert TallyChange.model_validate_json(change.value).version == 9
    assert ("recordedtime", "2024-05-12T02:00Z") in change.headers
    traced = wire.tally_change(("B-1", date(2024, 5, 12), "admitted", "all"), 1, 1, 1, "e-8", None, "corr-9")
    assert ("correlation-id", "corr-9") in traced.headers
    rejected = wire.rejection(
        "e-7", "candidate_dropped", "after the drop", event(), datetime.now(UTC), "corr-1"
    )
    assert rejected.key == b"e-7"
    parsed = Rejection.model_validate_json(rejected.value)
    assert (parsed.code, parsed.service) == ("candidate_dropped", "quota")
    assert ("correlation-id", "corr-1") in rejected.headers


def test_a_rebuilt_wire_event_decodes_to_the_same_domain_event() -> None:
    decoded = wire.decode(Rec(orjson.dumps(event())), None)
    assert isinstance(decoded, wire.Decoded)
    domain = wire.candidate_event(decoded)
    again = wire.decode(Rec(orjson.dumps(wire.wire_event(domain))), None)
    assert isinstance(again, wire.Decoded)
    assert wire.candidate_event(again) == domain


def test_recorded_at_prefers_the_header() -> None:
    header = (("recordedtime", b"2024-05-12T02:00:01+00:00"),)
    assert (
        recorded_at(Rec(b"", headers=header, timestamp=5_000))
        == datetime(2024, 5, 12, 2, 0, 1, tzinfo=UTC).timestamp()
    )
    assert recorded_at(Rec(b"", timestamp=5_000)) == 5.0


def _state(*events: dict) -> CandidateState:
    state = None
    for raw in events:
        decoded = wire.decode(Rec(orjson.dumps(raw)), None)
        assert isinstance(decoded, wire.Decoded)
        state = apply(state, wire.candidate_event(decoded)).state
    assert state is not None
    return state


def test_candidate_row_carries_what_the_api_filters_on() -> None:
    admitted = {**event("candidate.admitted"), "id": "e-2", "time": "2024-02-29T09:00:00+07:00"}
    row = candidate_row(_state(event(), admitted), 3)
    assert (row["stage"], row["admitted_on"], row["due_on"], row["version"]) == (
        "admitted",
        date(2024, 2, 29),
        date(2025, 2, 28),
        3,
    )
    assert (row["held_count"], row["held_since"]) == (0, None)
    assert CandidateState.from_dict(orjson.loads(row["state"])) == _state(event(), admitted)


def test_candidate_row_of_a_held_event() -> None:
    row = candidate_row(_state({**event("candidate.admitted"), "id": "e-2"}), 1)
    assert (row["stage"], row["held_count"], row["due_on"]) == (None, 1, None)
    assert row["held_since"] == datetime(2024, 5, 12, 2, 0, 1, tzinfo=UTC)
    assert row["branch_id"] == "B-C06901-03"


def test_the_state_cache_trusts_only_the_version_it_was_given() -> None:
    cache, state = StateCache(capacity=2), CandidateState("c-1")
    hits, misses = _lookups("hit"), _lookups("miss")
    cache.put("c-1", 4, state)
    assert cache.get("c-1", 4) is state
    assert cache.get("c-1", 5) is None
    assert (_lookups("hit") - hits, _lookups("miss") - misses) == (1, 1)
    cache.put("c-2", 1, CandidateState("c-2"))
    cache.put("c-3", 1, CandidateState("c-3"))
    assert len(cache) == 2
    assert cache.get("c-1", 4) is None  # least recently used went first
    assert StateCache(capacity=0).get("c-1", 4) is None


def _lookups(result: str) -> float:
    return float(REGISTRY.get_sample_value("ketnap_quota_state_cache_lookups_total", {"result": result}) or 0)


def test_apply_all_matches_the_domain_applied_one_by_one() -> None:
    """Same final state and same summed deltas as ``lifecycle.apply`` per event, whatever the order."""
    from collections import Counter

    from services.quota.domain import fold_deltas
    from services.quota.handlers import apply_all
    from tests.integration.quota.feed import make_feed

    feed = make_feed(300, branches=6, seed=17)
    per: dict[str, list] = {}
    for raw in feed.candidates:
        decoded = wire.decode(Rec(orjson.dumps(raw)), None)
        assert isinstance(decoded, wire.Decoded)
        domain = wire.candidate_event(decoded)
        per.setdefault(domain.candidate_id, []).append(domain)
    for events in per.values():
        half = len(events) // 2
        state, deltas = None, []
        for event in events:
            outcome = apply(state, event)
            state, deltas = outcome.state, [*deltas, *outcome.deltas]
        first = apply_all(None, events[:half]) if half else None
        second = apply_all(first.state if first else None, events[half:])
        assert second.state == state
        summed: Counter = Counter()
        summed.update(first.sums if first else {})  # update keeps negative counts, + would not
        summed.update(second.sums)
        expected = {(k.branch_id, k.date, k.metric, k.category): n for k, n in fold_deltas(deltas).items()}
        assert {k: n for k, n in summed.items() if n} == expected
