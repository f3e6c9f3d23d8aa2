"""The plain fast path reads candidate events exactly as the strict models do, or leaves them to them."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.quota import wire
from services.quota.plain import plain_candidate
from shared.events import EVENT_DATA, is_candidate_type

pytestmark = pytest.mark.unit

CANDIDATE_TYPES = frozenset(t for t in EVENT_DATA if is_candidate_type(t))
SHORT = frozenset(t.removeprefix("vn.ketnap.candidate.") for t in CANDIDATE_TYPES)
PROFILE = {"birth_year": 2001, "sex": "female", "categories": ["youth_union", "student"]}
DATA: dict[str, dict[str, Any]] = {
    "sourced": {"branch_id": "B-C06901-03", "profile": PROFILE},
    "class_completed": {"branch_id": "B-1"},
    "dossier_verified": {"branch_id": "B-1"},
    "admitted": {"branch_id": "B-1", "decision_no": "12/QĐ"},
    "confirmed": {"branch_id": "B-1"},
    "dropped": {"branch_id": "B-1", "reason": "moved_away"},
    "transferred": {"from_branch_id": "B-1", "to_branch_id": "B-2"},
    "voided": {"voids": "e-0", "reason": "typo"},
}
# Values near every rule's edge: wrong types, bounds, patterns, time forms.
ODD: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1899,
    1900,
    2100,
    2101,
    1.5,
    "",
    " ",
    "x" * 64,
    "x" * 65,
    "x" * 128,
    "x" * 129,
    "x" * 256,
    "x" * 257,
    "x" * 500,
    "x" * 501,
    "B-1",
    "B-1\n",
    "-B",
    "Bé",
    "1.0",
    "1.1",
    "female",
    "male",
    "other",
    "student",
    "religious",
    "demobilized_soldier",
    "moved_away",
    "not_recognised",
    "bogus",
    "nul\x00inside",
    "application/json",
    "text/plain",
    "2024-05-12T09:00:00+07:00",
    "2024-05-12T09:00:00Z",
    "2024-05-12T09:00:00z",
    "2024-05-12T09:00:00",
    "2024-05-12 09:00:00Z",
    "2024-02-30T09:00:00Z",
    "2024-05-12T24:00:00Z",
    "2024-05-12T23:59:60Z",
    "2024-05-12T09:00:00.5Z",
    "2024-05-12T09:00:00.1234567Z",
    "2024-05-12T09:00:00+24:00",
    "2024-05-12T09:00:00+07:60",
    "2024-05-12T09:00:00-00:00",
    "2024-05-12T09:00:00+0700",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59+14:00",
    "2024-05-12",
    "vn.ketnap.candidate.admitted",
    "vn.ketnap.candidate.bogus",
    "vn.ketnap.target.set",
    [],
    ["student"],
    ["student", "student"],
    ["bogus"],
    ["student", "religious", "youth_union"],
    list(PROFILE["categories"]) * 4,
    {},
    {"birth_year": 2001, "sex": "male"},
    PROFILE,
]
KEYS = ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data",
        "recordedtime", "extra", "branch_id", "profile", "reason", "voids", "decision_no",
        "from_branch_id", "to_branch_id", "birth_year", "sex", "categories"]  # fmt: skip


def valid(short: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/deployments/quang-ninh",
        "type": f"vn.ketnap.candidate.{short}",
        "time": "2024-05-12T09:00:00+07:00",
        "subject": "cand-1",
        "datacontenttype": "application/json",
        "data": copy.deepcopy(DATA[short]),
        "recordedtime": "2024-05-12T02:00:01.250000+00:00",
    }


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid candidate event with a few keys, anywhere in it, set to odd values or removed."""
    event = valid(draw(st.sampled_from(sorted(SHORT))))
    for _ in range(draw(st.integers(0, 3))):
        data = event.get("data")
        profile = data.get("profile") if isinstance(data, dict) else None
        target = draw(st.sampled_from([event, data, profile]))
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = copy.deepcopy(draw(st.sampled_from(ODD)))
    return event


class Rec:
    def __init__(self, value: bytes) -> None:
        self.topic, self.partition, self.offset = "ketnap.candidate-events", 0, 1
        self.timestamp = 1_700_000_000_000
        self.key, self.value, self.headers = b"k", value, ()


@settings(max_examples=3000)
@given(mutated())
def test_the_fast_path_agrees_with_the_strict_models(event: dict[str, Any]) -> None:
    record = Rec(orjson.dumps(event))
    fast = wire.decode(record, None)
    strict = wire.decode(record, CANDIDATE_TYPES)  # an explicit type set never takes the fast path
    assert type(fast) is type(strict)
    if plain_candidate(orjson.loads(record.value), SHORT) is None:
        return
    assert isinstance(fast, wire.Decoded)
    assert isinstance(strict, wire.Decoded)
    assert (fast.plain, strict.plain) == (True, False)
    for name in ("id", "type", "subject", "digest", "text", "raw"):
        assert getattr(fast, name) == getattr(strict, name)
    for name in ("time", "recorded"):
        assert getattr(fast, name).isoformat() == getattr(strict, name).isoformat()
    mine, theirs = wire.candidate_event(fast), wire.candidate_event(strict)
    assert mine == theirs
    assert mine.to_dict() == theirs.to_dict()


@pytest.mark.parametrize("short", sorted(SHORT))
def test_every_valid_candidate_type_takes_the_fast_path(short: str) -> None:
    raw = valid(short)
    assert plain_candidate(raw, SHORT) is not None
    decoded = wire.decode(Rec(orjson.dumps(raw)), None)
    assert isinstance(decoded, wire.Decoded)
    assert decoded.plain


@pytest.mark.parametrize(
    ("short", "path"),
    [(s, ("id",)) for s in sorted(SHORT)]
    + [("voided", ("data", "reason")), ("voided", ("data", "voids")), ("admitted", ("data", "decision_no"))],
)
def test_a_nul_in_free_text_is_refused_on_both_paths(short: str, path: tuple[str, ...]) -> None:
    """The schema's NUL_FREE rule (PostgreSQL text cannot hold NUL) holds on the fast path too."""
    raw = valid(short)
    holder = raw
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = "nul\x00inside"
    assert plain_candidate(raw, SHORT) is None
    decoded = wire.decode(Rec(orjson.dumps(raw)), None)
    assert isinstance(decoded, wire.Poison)
    assert decoded.code == "invalid_schema"
