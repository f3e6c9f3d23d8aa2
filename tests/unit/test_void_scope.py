"""shared.scope's void checks: the ``voidscope`` extension and ``admits``, the quota's test of a void.

The quota decides a province's void of an event the intake had not seen with
``admits(scope entries, place of the voided event)``; the intake authorises every
other write with ``TokenScope.covers``. Both go through ``TokenScope.holds``, and the
property below holds them equal across the extension's round trip, for every unit.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import VOID_SCOPE_PATTERN
from shared.orgtree import TreeVersion, load_org_trees
from shared.scope import (
    UNPLACED,
    VOID_SCOPE,
    TokenScope,
    admits,
    parse_void_scope,
    place,
    province_of,
    void_scope,
)

pytestmark = pytest.mark.unit

TREES = load_org_trees()
TREE_NAMES: tuple[TreeVersion, ...] = ("legacy", "2025")
PROVINCES = {tree: sorted(u.id for u in TREES[tree].units("province")) for tree in TREE_NAMES}
UNITS = {tree: sorted(u.id for u in TREES[tree].units() if u.id != "VN") for tree in TREE_NAMES}
TAGGED = [f"{tree}:{p}" for tree in TREE_NAMES for p in PROVINCES[tree]]
UNTAGGED = sorted({p for tree in TREE_NAMES for p in PROVINCES[tree]})


def test_the_extension_name_is_a_valid_cloudevents_attribute_name() -> None:
    assert re.fullmatch(r"[a-z0-9]{1,20}", VOID_SCOPE)


@pytest.mark.parametrize("entry", TAGGED + UNTAGGED)
def test_every_single_entry_admits_exactly_its_provinces(entry: str) -> None:
    """Exhaustive over every province of both trees: a tagged entry is that province of
    that tree, an untagged one that id in both trees."""
    for tree in TREE_NAMES:
        for province in PROVINCES[tree]:
            expected = entry in (f"{tree}:{province}", province)
            assert admits([entry], place(tree, province)) == expected, (entry, tree, province)


def test_a_scope_admits_the_union_of_its_entries() -> None:
    entries = ["legacy:P10", "legacy:P15", "2025:P15"]
    admitted = {
        p for tree in TREE_NAMES for p in (place(tree, x) for x in PROVINCES[tree]) if admits(entries, p)
    }
    assert admitted == {"legacy:P10", "legacy:P15", "2025:P15"}


@pytest.mark.parametrize("where", [None, UNPLACED, "P10", "legacy:", "1999:P10", "legacy:P10 2025:P15", ""])
def test_nothing_admits_an_unknown_or_malformed_place(where: str | None) -> None:
    assert not admits(["*"], where)
    assert not admits(["P10", "legacy:P10"], where)


def test_a_national_scope_admits_every_province_and_an_empty_one_none() -> None:
    every = [place(tree, p) for tree in TREE_NAMES for p in PROVINCES[tree]]
    assert all(admits(["*"], p) for p in every)
    assert not any(admits([], p) for p in every)


def test_holds_is_the_rule_covers_and_admits_share() -> None:
    scope = TokenScope.parse(["legacy:P10", "P22"])
    assert all(scope.holds(tree, p) for tree, p in (("legacy", "P10"), ("legacy", "P22"), ("2025", "P22")))
    assert not scope.holds("2025", "P10")
    assert not scope.holds("legacy", None)
    assert TokenScope.parse(["*"]).holds("2025", "P99")  # national: any province id
    assert not TokenScope.parse(["*"]).holds("2025", None)


def test_the_extension_value_is_the_describe_form_and_reads_back() -> None:
    scope = TokenScope.parse(["P22", "legacy:P10", "2025:P15"])
    assert void_scope(scope) == "legacy:P10 legacy:P22 2025:P15 2025:P22"
    assert parse_void_scope(void_scope(scope)) == tuple(scope.describe())
    assert parse_void_scope("P22  2025:P15") == ("legacy:P22", "2025:P15", "2025:P22")  # config grammar
    assert parse_void_scope("") == ()
    for entry in TAGGED + UNTAGGED:
        single = TokenScope.parse([entry])
        assert TokenScope.parse(parse_void_scope(void_scope(single))) == single


@pytest.mark.parametrize("value", ["P1", "VN", "legacy:C06901", "2024:P10", "legacy:P10,2025:P15"])
def test_a_malformed_extension_value_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="bad scope entry"):
        parse_void_scope(value)


ENTRY = st.sampled_from(TAGGED + UNTAGGED)


@settings(max_examples=500, deadline=None)
@given(entries=st.lists(ENTRY, max_size=4), tree=st.sampled_from(TREE_NAMES), data=st.data())
def test_the_quota_admits_exactly_what_the_intake_would_cover(
    entries: list[str], tree: TreeVersion, data: st.DataObject
) -> None:
    """Through the extension's round trip, for any unit: the quota's check of a voided event
    lying under ``unit`` equals the intake's check of a write for ``unit``."""
    unit = data.draw(st.sampled_from(UNITS[tree]))
    scope = TokenScope.parse(entries)
    carried = parse_void_scope(void_scope(scope))
    where = place(tree, province_of(TREES[tree], unit))
    assert admits(carried, where) == scope.covers(unit, tree, TREES)


@pytest.mark.parametrize(
    "value",
    [
        "legacy:P10 2025:P15",
        "P22",
        "",
        "*",
        " P22  2025:P15 ",
        "legacy:P1",
        "VN",
        "legacy:P10,2025:P15",
        "P10P22",
    ],
)
def test_the_published_json_schema_pattern_agrees_with_the_parser(value: str) -> None:
    try:
        parse_void_scope(value)
        readable = True
    except ValueError:
        readable = False
    assert bool(re.match(VOID_SCOPE_PATTERN, value)) == readable
