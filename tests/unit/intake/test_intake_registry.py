"""The branch registry's history: where a branch belonged, when, in which tree."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.domain.registry import Attribution, BranchHistory, Placement
from shared.orgtree import load_org_trees

pytestmark = pytest.mark.unit

TREES = load_org_trees()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def placed(when: str, legacy: str | None = None, v2025: str | None = None, event_id: str = "e") -> Placement:
    return Placement("B1", at(when), event_id, legacy, v2025)


def test_parent_follows_moves_over_time() -> None:
    history = BranchHistory.of(
        [
            placed("2024-09-01T00:00:00+07:00", "C06898", event_id="e2"),
            placed("2024-01-01T00:00:00+07:00", "C06901"),
        ]
    )
    assert history.parent("legacy", at("2024-05-01T00:00:00+07:00")) == "C06901"
    assert history.parent("legacy", at("2024-10-01T00:00:00+07:00")) == "C06898"
    assert history.current.legacy == "C06898"


def test_events_older_than_the_registration_use_the_first_placement() -> None:
    history = BranchHistory.of([placed("2024-01-01T00:00:00+07:00", "C06901")])
    assert history.parent("legacy", at("2019-01-01T00:00:00+07:00")) == "C06901"


def test_attribution_uses_the_tree_in_force_at_the_local_date() -> None:
    history = BranchHistory.of([placed("2024-01-01T00:00:00+07:00", "C06901", "C06913")])
    assert history.attribution(at("2025-06-30T23:59:00+07:00"), TREES) == Attribution("C06901", "legacy")
    # 2025-06-30T17:00Z is already 2025-07-01 in Vietnam: the 2025 tree.
    assert history.attribution(at("2025-06-30T17:00:00+00:00"), TREES) == Attribution("C06913", "2025")


def test_no_2025_parent_falls_back_to_the_crosswalk() -> None:
    history = BranchHistory.of([placed("2024-01-01T00:00:00+07:00", "C06901")])
    assert history.attribution(at("2025-08-01T00:00:00+07:00"), TREES) == Attribution(
        TREES.to_2025("C06901") or "", "2025"
    )


def test_no_legacy_parent_falls_back_to_the_2025_parent() -> None:
    history = BranchHistory.of([placed("2025-08-01T00:00:00+07:00", v2025="C06913")])
    assert history.attribution(at("2024-03-01T00:00:00+07:00"), TREES) == Attribution("C06913", "2025")


def test_a_later_registration_naming_only_2025_keeps_the_legacy_parent() -> None:
    history = BranchHistory.of(
        [
            placed("2024-01-01T00:00:00+07:00", "C06901"),
            placed("2025-08-01T00:00:00+07:00", v2025="C06652", event_id="e2"),
        ]
    )
    assert history.parent("legacy", at("2025-09-01T00:00:00+07:00")) == "C06901"
    assert history.attribution(at("2025-07-15T00:00:00+07:00"), TREES) == Attribution("C06652", "2025")


@given(st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=8), st.integers(0, 3000))
def test_parent_is_the_latest_placement_not_after_the_instant(days: list[int], probe: int) -> None:
    start = at("2020-01-01T00:00:00+07:00")
    placements = [
        placed((start + timedelta(days=d)).isoformat(), f"C{i:05d}", event_id=f"e{i}")
        for i, d in enumerate(days)
    ]
    history = BranchHistory.of(list(reversed(placements)))
    when = start + timedelta(days=probe)
    valid = sorted((p for p in placements if p.valid_from <= when), key=lambda p: (p.valid_from, p.event_id))
    expected = valid[-1] if valid else min(placements, key=lambda p: (p.valid_from, p.event_id))
    assert history.parent("legacy", when) == expected.legacy
    assert (
        history.add(placed("2019-01-01T00:00:00+07:00", "C99999", event_id="z")).placements[0].legacy
        == "C99999"
    )
