"""shared.scope: what a token covers, in each tree, by province [tỉnh]."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.orgtree import OrgTrees, TreeVersion, load_org_trees
from shared.scope import TokenScope, parse_scopes, unknown_entries

pytestmark = pytest.mark.unit

TREES = load_org_trees()
ALL_UNITS = {tree: sorted(u.id for u in TREES[tree].units()) for tree in ("legacy", "2025")}
PROVINCES = {tree: sorted(u.id for u in TREES[tree].units("province")) for tree in ("legacy", "2025")}


def test_national_covers_everything_including_vn() -> None:
    scope = TokenScope.parse(["*"])
    assert scope.national
    assert all(scope.covers(u, "legacy", TREES) for u in ("VN", "P10", "D200", "C06901"))
    assert all(scope.covers(u, "2025", TREES) for u in ("VN", "P15", "C06913"))


def test_national_does_not_cover_ids_the_tree_lacks() -> None:
    assert not TokenScope.parse(["*"]).covers("D200", "2025", TREES)  # no districts in 2025
    assert not TokenScope.parse(["*"]).covers("C99999", "legacy", TREES)


def test_unprefixed_entry_means_both_trees() -> None:
    scope = TokenScope.parse(["P22"])
    assert scope.provinces == {"legacy": frozenset({"P22"}), "2025": frozenset({"P22"})}
    assert scope.covers("C06901", "legacy", TREES)  # Xã Quảng An < Đầm Hà < Quảng Ninh
    assert scope.covers("D200", "legacy", TREES)
    assert scope.covers("C06913", "2025", TREES)


def test_prefixed_entries_only_cover_their_tree() -> None:
    legacy_lao_cai = TokenScope.parse(["legacy:P10"])
    assert legacy_lao_cai.covers("C02680", "legacy", TREES)  # Xã Hợp Thành, Lào Cai
    assert not legacy_lao_cai.covers(TREES.to_2025("C02680") or "", "2025", TREES)
    new_lao_cai = TokenScope.parse(["2025:P15"])
    assert new_lao_cai.covers(TREES.to_2025("C02680") or "", "2025", TREES)
    assert not new_lao_cai.covers("C02680", "legacy", TREES)


def test_legacy_yen_bai_lies_in_2025_lao_cai() -> None:
    """Legacy P10 Lào Cai and P15 Yên Bái were merged into 2025 P15 Lào Cai."""
    scope = TokenScope.parse(["2025:P15"])
    yen_bai_commune = next(
        u.id for u in TREES.legacy.units("commune") if TREES.legacy.province_of(u.id) == "P15"
    )
    assert scope.covers(TREES.to_2025(yen_bai_commune) or "", "2025", TREES)
    assert not TokenScope.parse(["legacy:P10"]).covers(yen_bai_commune, "legacy", TREES)


def test_province_scope_never_covers_the_country_or_another_province() -> None:
    scope = TokenScope.parse(["P22"])
    assert not scope.covers("VN", "legacy", TREES)
    assert not scope.covers("VN", "2025", TREES)
    assert not scope.covers("P01", "2025", TREES)
    assert not scope.covers("C02680", "legacy", TREES)


def test_empty_scope_covers_nothing() -> None:
    scope = TokenScope.parse([])
    assert not scope.national
    assert not any(scope.covers(u, "legacy", TREES) for u in ("VN", "P22", "C06901"))


@pytest.mark.parametrize("entry", ["P2", "p22", "D200", "C06901", "2024:P22", "legacy:", "*P22", "VN", ""])
def test_malformed_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="bad scope entry"):
        TokenScope.parse([entry])


def test_unknown_entries_names_provinces_no_tree_has() -> None:
    assert unknown_entries(["P22", "legacy:P10", "2025:P15", "*"], TREES) == []
    assert unknown_entries(["P10"], TREES) == []  # legacy only, still a province somewhere
    assert unknown_entries(["2025:P10", "P99", "legacy:P99"], TREES) == ["2025:P10", "P99", "legacy:P99"]


def test_describe_never_mentions_tokens() -> None:
    scopes = parse_scopes({"secret-token": ["legacy:P10", "P22"]})
    assert scopes["secret-token"].describe() == ["legacy:P10", "legacy:P22", "2025:P22"]
    assert TokenScope.parse(["*", "P22"]).describe() == ["*"]


tree_strategy = st.sampled_from(["legacy", "2025"])


@settings(max_examples=300, deadline=None)
@given(tree=tree_strategy, data=st.data())
def test_province_token_covers_exactly_units_of_that_province(tree: TreeVersion, data: st.DataObject) -> None:
    province = data.draw(st.sampled_from(PROVINCES[tree]))
    unit = data.draw(st.sampled_from(ALL_UNITS[tree]))
    scope = TokenScope.parse([f"{tree}:{province}"])
    expected = unit != "VN" and TREES[tree].province_of(unit) == province
    assert scope.covers(unit, tree, TREES) == expected


@settings(max_examples=200, deadline=None)
@given(tree=tree_strategy, data=st.data())
def test_several_provinces_cover_the_union(tree: TreeVersion, data: st.DataObject) -> None:
    provinces = data.draw(st.sets(st.sampled_from(PROVINCES[tree]), max_size=5))
    unit = data.draw(st.sampled_from(ALL_UNITS[tree]))
    scope = TokenScope.parse([f"{tree}:{p}" for p in provinces])
    assert scope.covers(unit, tree, TREES) == any(
        TokenScope.parse([f"{tree}:{p}"]).covers(unit, tree, TREES) for p in provinces
    )


def test_every_unit_of_every_province_is_covered_by_its_own_token() -> None:
    trees: OrgTrees = TREES
    for tree in ("legacy", "2025"):
        for unit in trees[tree].units():
            if unit.id == "VN":
                continue
            province = trees[tree].province_of(unit.id)
            assert TokenScope.parse([f"{tree}:{province}"]).covers(unit.id, tree, trees)
