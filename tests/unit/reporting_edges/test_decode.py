"""Records to fold inputs: tally changes, registrations and targets; the rest ignored or refused."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson
import pytest

from services.reporting.domain import Target
from services.reporting.fold import Change, Registration
from services.reporting.handlers import UnreadableRecord, decode_change, decode_reference
from services.reporting.series import SERIES
from tests.integration.reporting.feed import branch_registered, cloudevent, target_set

pytestmark = pytest.mark.unit

CHANGE = {
    "branch_id": "B-C06901-03",
    "date": "2024-05-12",
    "metric": "admitted",
    "category": "female",
    "delta": 1,
    "value": 4,
    "version": 7,
    "source_event_id": "0b6f4a52",
}


def test_a_tally_change_becomes_a_fold_input() -> None:
    assert decode_change(orjson.dumps(CHANGE)) == Change(
        "B-C06901-03", date(2024, 5, 12).toordinal(), SERIES[("admitted", "female")], 4, 7
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"metric": "elected"},
        {"category": "male"},
        {"date": "2024-13-01"},
        {"value": -1},
        {"version": 0},
        {"version": "7"},
        {"value": True},
        {"branch_id": ""},
        {"branch_id": 5},
    ],
)
def test_a_broken_tally_change_is_unreadable(broken: dict[str, object]) -> None:
    with pytest.raises(UnreadableRecord) as caught:
        decode_change(orjson.dumps({**CHANGE, **broken}))
    assert caught.value.code == "invalid_schema"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", orjson.dumps({"branch_id": "B"})])
def test_garbage_is_unreadable(raw: bytes) -> None:
    with pytest.raises(UnreadableRecord):
        decode_change(raw)


def test_a_registration_keeps_both_parents_and_its_precedence() -> None:
    event = branch_registered("B-C06901-03", "C06901", "C06913", kind="school")
    found = decode_reference(orjson.dumps(event))
    assert isinstance(found, Registration)
    assert (found.branch.legacy_parent, found.branch.parent_2025, found.branch.kind) == (
        "C06901",
        "C06913",
        "school",
    )
    assert found.event_id == event["id"]


def test_a_target_without_tree_takes_the_tree_in_force_when_it_was_sent() -> None:
    """As the intake and the quota key it (finding 6), not by its year."""
    sent_in_july = datetime(2025, 7, 2, 8, tzinfo=UTC)
    found = decode_reference(orjson.dumps(target_set("P22", 2025, "assigned", 40, time=sent_in_july)))
    assert isinstance(found, Target)
    assert (found.tree, found.metric, found.category, found.value) == ("2025", "admitted", "all", 40)
    sent_in_january = decode_reference(orjson.dumps(target_set("P22", 2025, "resolution", 30)))
    assert isinstance(sent_in_january, Target)
    assert sent_in_january.tree == "legacy"


def test_other_reference_types_are_ignored() -> None:
    assert decode_reference(orjson.dumps(cloudevent("candidate.admitted", {"branch_id": "B"}))) is None


def test_a_reference_event_with_bad_data_is_unreadable() -> None:
    event = branch_registered("B-C06901-03", "C06901")
    event["data"]["parents"] = {}
    with pytest.raises(UnreadableRecord):
        decode_reference(orjson.dumps(event))
