"""Tally arithmetic: categories, contributions per event type, exact diffs, sums."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.quota.domain import (
    CATEGORIES,
    METRICS,
    Profile,
    TallyDelta,
    TallyKey,
    categories_of,
    contribution,
    diff_contributions,
    fold_deltas,
)
from tests.unit.quota.factory import MALE, PROFILE, day, ev

pytestmark = pytest.mark.unit

KEY = TallyKey("B-1", day(0).date(), "admitted", "all")


def test_metrics_and_categories_are_the_contract_vocabulary():
    reasons = ("moved_away", "ineligible", "declined", "not_recognised", "deceased", "other")
    assert set(METRICS) == {
        "sourced",
        "class_completed",
        "dossier_verified",
        "admitted",
        "confirmed",
        "dropped",
        *(f"dropped.{r}" for r in reasons),
        "transferred_in",
        "transferred_out",
    }
    assert all(type(m) is str for m in METRICS)
    assert set(CATEGORIES) == {
        "all",
        "female",
        "student",
        "private_sector",
        "business_owner",
        "ethnic_minority",
        "religious",
        "demobilized_soldier",
        "youth_union",
    }


def test_categories_are_all_female_and_profile_categories():
    assert categories_of(PROFILE) == ("all", "female", "ethnic_minority", "student")
    assert categories_of(MALE) == ("all",)
    assert categories_of(Profile(1980, "male", ("religious",))) == ("all", "religious")


def test_milestone_counts_once_per_category_at_its_branch_and_date():
    keys = contribution(ev("class_completed", "c", 5, branch="B-7"), MALE)
    assert keys == (TallyKey("B-7", day(5).date(), "class_completed", "all"),)


def test_drop_counts_dropped_and_its_reason():
    keys = contribution(ev("dropped", "d", reason="deceased"), MALE)
    assert [k.metric for k in keys] == ["dropped", "dropped.deceased"]


def test_transfer_counts_out_on_the_old_branch_and_in_on_the_new():
    keys = contribution(ev("transferred", "t", branch="B-1", to_branch_id="B-2"), MALE)
    assert [(k.branch_id, k.metric) for k in keys] == [("B-1", "transferred_out"), ("B-2", "transferred_in")]


def test_void_counts_nothing_itself():
    assert contribution(ev("voided", "x", voids="a"), PROFILE) == ()


def test_diff_takes_back_removed_events_exactly_and_adds_new_ones():
    old = {"a": (KEY,), "b": (KEY,)}
    new = {"b": (KEY,), "c": (KEY,)}
    assert diff_contributions(old, new) == (TallyDelta(KEY, -1, "a"), TallyDelta(KEY, 1, "c"))
    assert diff_contributions(new, new) == ()


def test_fold_sums_per_key_and_forgets_zeros():
    other = TallyKey("B-2", KEY.date, "admitted", "all")
    deltas = [TallyDelta(KEY, 1, "a"), TallyDelta(other, 1, "b"), TallyDelta(KEY, -1, "a")]
    assert fold_deltas(deltas) == {other: 1}
    assert fold_deltas([TallyDelta(KEY, 2, "a")], {KEY: 3}) == {KEY: 5}


def test_keys_and_deltas_round_trip_through_json():
    delta = TallyDelta(KEY, -1, "a")
    assert TallyDelta.from_dict(json.loads(json.dumps(delta.to_dict()))) == delta
    assert delta.to_dict()["date"] == "2024-01-01"


keys = st.builds(
    TallyKey,
    st.sampled_from(["B-1", "B-2"]),
    st.just(KEY.date),
    st.sampled_from(METRICS[:3]),
    st.sampled_from(CATEGORIES[:3]),
)
books = st.dictionaries(st.sampled_from("abcdef"), st.lists(keys, unique=True, max_size=4).map(tuple))


@given(before=books, after=books)
def test_diff_then_fold_turns_one_book_into_the_other(before, after):
    def tally(book: dict[str, tuple[TallyKey, ...]]) -> dict[TallyKey, int]:
        return {k: n for k, n in Counter(k for ks in book.values() for k in ks).items() if n}

    assert fold_deltas(diff_contributions(before, after), tally(before)) == tally(after)
