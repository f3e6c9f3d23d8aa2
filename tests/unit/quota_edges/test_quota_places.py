"""services.quota.places: where the event a scoped void names lies, from the branch the quota keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.quota.domain import CandidateEvent, CandidateState, EventType
from services.quota.places import branch_of, place_of, unplaced
from services.quota.places import stamp as places_stamp
from shared.scope import UNPLACED

pytestmark = pytest.mark.unit

VN = timezone(timedelta(hours=7))
LEGACY_DAY = datetime(2025, 6, 30, 23, 59, tzinfo=VN)
REFORM_DAY = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)  # 2025-07-01 00:00 in Vietnam


def row(
    legacy: str | None = "C02680", province_legacy: str | None = "P10", province_2025: str | None = "P15"
) -> dict[str, Any]:
    return {"parent_legacy": legacy, "province_legacy": province_legacy, "province_2025": province_2025}


def test_an_event_lies_in_its_branchs_province_of_the_tree_in_force_at_its_local_date() -> None:
    assert place_of(row(), LEGACY_DAY) == "legacy:P10"
    assert place_of(row(), REFORM_DAY) == "2025:P15"
    assert place_of(row(), REFORM_DAY - timedelta(seconds=1)) == "legacy:P10"


def test_before_the_reform_a_branch_with_only_a_2025_parent_lies_in_its_2025_province() -> None:
    assert place_of(row(legacy=None, province_legacy=None), LEGACY_DAY) == "2025:P15"


@pytest.mark.parametrize(
    ("branch", "at"),
    [
        (None, LEGACY_DAY),
        (None, REFORM_DAY),
        (row(province_2025=None), REFORM_DAY),
        (row(province_legacy=None), LEGACY_DAY),  # a legacy parent no tree places
    ],
)
def test_an_unknown_branch_or_province_is_unplaced(branch: dict[str, Any] | None, at: datetime) -> None:
    assert place_of(branch, at) == UNPLACED


def ev(kind: str, eid: str, **fields: Any) -> CandidateEvent:
    at = datetime(2024, 5, 1, 9, tzinfo=VN)
    defaults: dict[str, Any] = {} if kind in ("voided", "transferred") else {"branch_id": "B-1"}
    return CandidateEvent(eid, "c-1", EventType(kind), at, at, **(defaults | fields))


def test_only_events_named_by_a_scoped_void_and_not_yet_placed_are_wanted() -> None:
    events = [
        ev("admitted", "a"),
        ev("confirmed", "b", place="legacy:P10"),
        ev("class_completed", "c"),
        ev("voided", "x", voids="a", scope=("legacy:P10",)),
        ev("voided", "y", voids="b", scope=("legacy:P10",)),
        ev("voided", "z", voids="c"),  # no scope: authorised by the intake
    ]
    assert [e.id for e in unplaced(events)] == ["a"]
    assert unplaced(events[:3]) == []
    state = CandidateState("c-1", (events[0],))
    assert [e.id for e in unplaced((*state.events, events[3]))] == ["a"]


def test_a_transfer_lies_where_it_leaves_from() -> None:
    moved = ev("transferred", "t", from_branch_id="B-from", to_branch_id="B-to")
    assert branch_of(moved) == "B-from"
    assert branch_of(ev("admitted", "a")) == "B-1"


def test_stamp_places_the_named_events_in_the_state_and_the_batch_and_leaves_the_rest() -> None:
    stored = ev("admitted", "a")
    state = CandidateState("c-1", (stored, ev("class_completed", "c")))
    scoped = ev("voided", "x", voids="a", scope=("legacy:P10",))
    moved = ev("transferred", "t", from_branch_id="B-from", to_branch_id="B-1")
    held = ev("voided", "y", voids="t", scope=("legacy:P10",))
    rows = {"B-1": row(), "B-from": row(province_legacy="P22")}
    work = {"c-1": (state, [scoped]), "c-2": (None, [held, moved]), "c-3": (None, [ev("admitted", "z")])}
    stamped = places_stamp(work, rows)
    assert set(stamped) == {"c-1", "c-2"}
    placed_state, new = stamped["c-1"]
    assert placed_state is not None
    assert [e.place for e in placed_state.events] == ["legacy:P10", None]
    assert new == [scoped]
    assert [e.place for e in stamped["c-2"][1]] == [None, "legacy:P22"]
    assert places_stamp(work, {})["c-1"][0].events[0].place == UNPLACED  # type: ignore[union-attr]
