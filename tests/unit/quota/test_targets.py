"""Targets: latest (time, id) wins per key whatever the order; attainment half-up."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.quota.domain import (
    Target,
    TargetKey,
    attainment_pct,
    latest,
    latest_targets,
    target_from_cloudevent,
)

pytestmark = pytest.mark.unit

VN = timezone(timedelta(hours=7))
KEY = TargetKey("P22", "legacy", 2024, "admitted", "all", "resolution")


def target(value: int, hour: int, event_id: str, key: TargetKey = KEY) -> Target:
    return Target(key, value, datetime(2024, 1, 1, hour, tzinfo=VN), event_id)


def test_latest_time_wins_whatever_the_arrival_order():
    old, new = target(7, 9, "b"), target(9, 10, "a")
    assert latest(latest(None, old), new) == new
    assert latest(latest(None, new), old) == new


def test_equal_times_are_broken_by_the_larger_event_id():
    low, high = target(7, 9, "a"), target(9, 9, "b")
    assert latest(low, high) == latest(high, low) == high


def test_reapplying_the_winner_changes_nothing():
    winner = target(7, 9, "a")
    assert latest(winner, winner) is winner


def test_targets_of_different_keys_do_not_compete():
    assigned = TargetKey("P22", "legacy", 2024, "admitted", "all", "assigned")
    in_force = latest_targets([target(7, 9, "a"), target(9, 8, "b", assigned)])
    assert {k.kind: t.value for k, t in in_force.items()} == {"resolution": 7, "assigned": 9}
    with pytest.raises(ValueError, match="keys"):
        latest(target(7, 9, "a"), target(9, 8, "b", assigned))


@given(
    st.permutations([target(v, h, i) for v, h, i in [(1, 9, "a"), (2, 10, "c"), (3, 10, "b"), (4, 8, "z")]])
)
def test_latest_targets_is_order_free(targets):
    assert latest_targets(targets) == {KEY: target(2, 10, "c")}


@pytest.mark.parametrize(
    ("value", "goal", "pct"),
    [
        (9, 7, "128.57"),
        (9, 9, "100.00"),
        (0, 5, "0.00"),
        (1, 8, "12.50"),
        (1, 200, "0.50"),
        (1, 400, "0.25"),
        (1, 800, "0.13"),
        (2, 3, "66.67"),
        (1, 3, "33.33"),
        (10**30, 3, "3" * 32 + ".33"),
    ],
)
def test_attainment_is_rounded_half_up_to_two_decimals(value, goal, pct):
    assert attainment_pct(value, goal) == pct


@pytest.mark.parametrize("goal", [None, 0])
def test_no_attainment_without_a_target(goal):
    assert attainment_pct(5, goal) is None


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        attainment_pct(-1, 5)


@given(value=st.integers(0, 10**9), goal=st.integers(1, 10**6))
def test_attainment_matches_exact_half_up_rounding(value, goal):
    exact = Fraction(value * 100, goal)
    expected = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
        Decimal("0.01"), ROUND_HALF_UP
    )
    assert attainment_pct(value, goal) == str(expected)


def test_cloudevent_defaults_tree_metric_and_category():
    envelope: dict[str, Any] = {
        "id": "t-1",
        "type": "vn.ketnap.target.set",
        "time": "2025-06-30T20:00:00Z",  # already 2025-07-01 in Vietnam: the 2025 tree
        "data": {"unit_id": "P22", "year": 2025, "kind": "assigned", "value": 12},
    }
    t = target_from_cloudevent(envelope)
    assert t.key == TargetKey("P22", "2025", 2025, "admitted", "all", "assigned")
    legacy = target_from_cloudevent({**envelope, "time": "2025-06-30T16:59:59Z"})
    assert legacy.key.tree == "legacy"
    given_fields = {"tree": "legacy", "metric": "sourced", "category": "female", "source_doc": "NQ 05"}
    t = target_from_cloudevent({**envelope, "data": {**envelope["data"], **given_fields}})
    assert (t.key.tree, t.key.metric, t.key.category, t.source_doc) == tuple(given_fields.values())


@pytest.mark.parametrize("bad", [{"kind": "wish"}, {"tree": "1999"}])
def test_unknown_kind_or_tree_is_refused(bad):
    fields = {
        "unit_id": "P22",
        "tree": "legacy",
        "year": 2024,
        "metric": "admitted",
        "category": "all",
        "kind": "resolution",
    } | bad
    with pytest.raises(ValueError, match="not known"):
        TargetKey(**fields)


def test_negative_target_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        target(-1, 9, "a")


def test_target_round_trips_through_json():
    t = Target(KEY, 7, datetime(2024, 1, 1, 9, tzinfo=VN), "a", "Nghị quyết Đại hội")
    assert Target.from_dict(json.loads(json.dumps(t.to_dict()))) == t
