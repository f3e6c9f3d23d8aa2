"""The two official org trees, their crosswalk, and which tree is in force when."""

from __future__ import annotations

import ast
import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.orgtree import (
    REFORM_DATE,
    OrgTree,
    OrgTrees,
    Unit,
    build_org_trees,
    load_org_trees,
    local_date,
    tree_in_force,
)
from shared.orgtree.model import LEVELS, Level
from shared.orgtree.source import LegacyRow, Row2025, Source, parse_converter

pytestmark = pytest.mark.unit

TREES = load_org_trees()
IDS = {version: [u.id for u in TREES[version].units()] for version in ("legacy", "2025")}
ISLAND_DISTRICTS = {"D318", "D471", "D498", "D536", "D755"}
ID_PATTERN = {"national": r"VN", "province": r"P\d{2}", "district": r"D\d{3}", "commune": r"C\d{5}"}


def _count(tree: OrgTree, level: Level) -> int:
    return sum(1 for _ in tree.units(level))


# --- real counts and the contract's examples ---


def test_legacy_counts_match_the_official_list() -> None:
    counts = {level: _count(TREES.legacy, level) for level in LEVELS}
    assert counts == {"national": 1, "province": 63, "district": 696, "commune": 10_035}


def test_2025_counts_match_the_official_list_with_no_district_level() -> None:
    counts = {level: _count(TREES.v2025, level) for level in LEVELS}
    assert counts == {"national": 1, "province": 34, "district": 0, "commune": 3_321}


@pytest.mark.parametrize(
    ("commune", "district", "province"),
    [
        (("C06901", "Xã Quảng An"), ("D200", "Huyện Đầm Hà"), ("P22", "Tỉnh Quảng Ninh")),
        (("C02680", "Xã Hợp Thành"), ("D080", "Thành phố Lào Cai"), ("P10", "Tỉnh Lào Cai")),
    ],
)
def test_contract_examples_in_the_legacy_tree(commune, district, province) -> None:
    chain = [(u.id, u.name) for u in (TREES.legacy.unit(commune[0]), *TREES.legacy.ancestors(commune[0]))]
    assert chain == [commune, district, province, ("VN", "Việt Nam")]


def test_units_carry_level_and_tree() -> None:
    assert TREES.legacy.unit("C06901") == Unit("C06901", "Xã Quảng An", "commune", "legacy", "D200")
    assert TREES.v2025.unit("P22") == Unit("P22", "Tỉnh Quảng Ninh", "province", "2025", "VN")


@pytest.mark.parametrize("version", ["legacy", "2025"])
def test_ids_follow_the_contract_format(version) -> None:
    for unit in TREES[version].units():
        assert re.fullmatch(ID_PATTERN[unit.level], unit.id), unit


# --- structure ---


@pytest.mark.parametrize("version", ["legacy", "2025"])
def test_every_ancestor_chain_ends_at_vn(version) -> None:
    tree = TREES[version]
    for unit in tree.units():
        chain = tree.ancestors(unit.id)
        assert (chain[-1].id if chain else unit.id) == "VN"


@pytest.mark.parametrize(
    ("version", "levels"),
    [("legacy", ["district", "province", "national"]), ("2025", ["province", "national"])],
)
def test_a_communes_ancestors_are_one_per_level_above(version, levels) -> None:
    tree = TREES[version]
    for unit in tree.units("commune"):
        assert [a.level for a in tree.ancestors(unit.id)] == levels


@pytest.mark.parametrize("version", ["legacy", "2025"])
def test_children_and_parent_agree(version) -> None:
    tree = TREES[version]
    seen = 0
    for unit in tree.units():
        kids = tree.children(unit.id)
        assert [k.id for k in kids] == sorted(k.id for k in kids)
        for kid in kids:
            assert tree.parent(kid.id) == unit
        seen += len(kids)
    assert seen == len(tree) - 1  # every unit but VN is exactly one unit's child


def test_units_of_a_level_come_sorted_by_id() -> None:
    ids = [u.id for u in TREES.legacy.units("district")]
    assert ids == sorted(ids)
    assert ids[0] == "D001"


def test_island_districts_are_the_attachable_districts() -> None:
    legacy = TREES.legacy
    attachable = {u.id for u in legacy.units("district") if legacy.attachable(u.id)}
    assert attachable == ISLAND_DISTRICTS
    assert all(legacy.children(d) == () for d in ISLAND_DISTRICTS)
    assert legacy.unit("D755").name == "Huyện Côn Đảo"


def test_only_communes_and_island_districts_are_attachable() -> None:
    assert TREES.legacy.attachable("C06901")
    assert TREES.v2025.attachable(TREES.to_2025("C06901") or "")
    for not_attachable in ("VN", "P22", "D200", "nope"):
        assert not TREES.legacy.attachable(not_attachable)


def test_province_of() -> None:
    assert TREES.legacy.province_of("C06901") == "P22"
    assert TREES.legacy.province_of("D080") == "P10"
    assert TREES.legacy.province_of("P10") == "P10"
    for bad in ("VN", "P99", "C99999"):
        with pytest.raises(KeyError):
            TREES.legacy.province_of(bad)


def test_unknown_ids() -> None:
    tree = TREES.v2025
    assert tree.get("D200") is None  # a legacy district: the 2025 tree has no districts
    assert "D200" not in tree
    assert 22 not in tree
    assert not tree.is_within("D200", "VN")
    assert not tree.is_within("VN", "nope")
    for lookup in (tree.unit, tree.parent, tree.ancestors, tree.children):
        with pytest.raises(KeyError):
            lookup("D200")
    with pytest.raises(KeyError):
        TREES["2024"]  # type: ignore[index]


def test_vn_is_the_root() -> None:
    assert TREES.legacy.parent("VN") is None
    assert TREES.legacy.ancestors("VN") == ()
    assert len(TREES.v2025.children("VN")) == 34


def test_trees_are_immutable_and_cached() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TREES.legacy.unit("P22").name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        TREES.crosswalk["C06901"] = "C00001"  # type: ignore[index]
    assert load_org_trees() is TREES
    assert TREES["legacy"] is TREES.legacy
    assert TREES["2025"] is TREES.v2025


# --- crosswalk ---


def test_every_attachable_legacy_unit_has_a_2025_home_or_a_stated_reason() -> None:
    legacy = TREES.legacy
    attachable = {u.id for u in legacy.units() if legacy.attachable(u.id)}
    assert len(attachable) == 10_035 + len(ISLAND_DISTRICTS)
    assert set(TREES.crosswalk) | set(TREES.crosswalk_exceptions) == attachable
    assert len(TREES.crosswalk_exceptions) <= 5  # small, and each one explained
    assert all(reason.strip() for reason in TREES.crosswalk_exceptions.values())


def test_crosswalk_lands_on_2025_communes() -> None:
    assert all(TREES.v2025.unit(new).level == "commune" for new in TREES.crosswalk.values())
    assert TREES.divided <= set(TREES.crosswalk)
    assert len(TREES.divided) == 471


def test_quang_an_stays_in_quang_ninh() -> None:
    home = TREES.to_2025("C06901")
    assert home is not None
    assert TREES.v2025.province_of(home) == "P22"


def test_legacy_lao_cai_and_yen_bai_both_land_in_2025_lao_cai() -> None:
    legacy = TREES.legacy
    for province in ("P10", "P15"):
        homes = {
            TREES.v2025.province_of(new)
            for old, new in TREES.crosswalk.items()
            if legacy.is_within(old, province)
        }
        assert homes == {"P15"}
    assert TREES.v2025.unit("P15").name == "Tỉnh Lào Cai"


def test_island_districts_become_special_zones() -> None:
    for district in ISLAND_DISTRICTS:
        home = TREES.to_2025(district)
        assert home is not None
        assert TREES.v2025.unit(home).name.startswith("Đặc khu")


def test_to_2025_of_what_is_not_a_legacy_commune_is_none() -> None:
    for other in ("VN", "P22", "D200", "C99999"):
        assert TREES.to_2025(other) is None


# --- which tree, which day ---


def test_tree_in_force_switches_on_reform_day() -> None:
    assert date(2025, 7, 1) == REFORM_DATE
    assert tree_in_force(date(2025, 6, 30)) == "legacy"
    assert tree_in_force(date(2025, 7, 1)) == "2025"
    assert tree_in_force(date(1976, 7, 2)) == "legacy"
    assert tree_in_force(date(2030, 1, 1)) == "2025"


def test_tree_in_force_refuses_a_datetime() -> None:
    with pytest.raises(TypeError):
        tree_in_force(datetime(2025, 7, 1, tzinfo=UTC))


def test_local_date_is_vietnamese_at_the_utc_boundary() -> None:
    assert local_date(datetime(2025, 6, 30, 16, 59, 59, tzinfo=UTC)) == date(2025, 6, 30)
    assert local_date(datetime(2025, 6, 30, 17, 0, tzinfo=UTC)) == date(2025, 7, 1)
    assert local_date(datetime.fromisoformat("2025-07-01T00:00:00+07:00")) == date(2025, 7, 1)
    assert tree_in_force(local_date(datetime.fromisoformat("2025-06-30T17:00:00Z"))) == "2025"


def test_local_date_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_date(datetime(2025, 7, 1))


# Vietnam has kept UTC+07:00 without DST since 1975; earlier it used other offsets.
@given(st.datetimes(min_value=datetime(1976, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()))
def test_local_date_is_the_utc_plus_7_date(ts) -> None:
    as_utc = ts.astimezone(UTC).replace(tzinfo=None)
    assert local_date(ts) == (as_utc + timedelta(hours=7)).date()


# --- properties over random units ---

VERSIONED_IDS = st.sampled_from(["legacy", "2025"]).flatmap(
    lambda v: st.tuples(st.just(v), st.sampled_from(IDS[v]), st.sampled_from(IDS[v]))
)


@given(VERSIONED_IDS)
def test_is_within_agrees_with_ancestors(case) -> None:
    version, unit_id, other_id = case
    tree = TREES[version]
    above = {a.id for a in tree.ancestors(unit_id)}
    assert tree.is_within(unit_id, other_id) == (other_id == unit_id or other_id in above)
    assert tree.is_within(unit_id, "VN")
    assert tree.is_within(unit_id, unit_id)


@given(VERSIONED_IDS)
def test_province_of_is_the_province_on_the_way_up(case) -> None:
    version, unit_id, _ = case
    tree = TREES[version]
    if unit_id == "VN":
        with pytest.raises(KeyError):
            tree.province_of(unit_id)
        return
    province = tree.province_of(unit_id)
    assert tree.unit(province).level == "province"
    assert tree.is_within(unit_id, province)
    assert province == unit_id or province in {a.id for a in tree.ancestors(unit_id)}


def test_each_legacy_province_lands_in_one_2025_province() -> None:
    """Provinces merged whole in 2025: a legacy province's communes never scatter."""
    homes: dict[str, set[str]] = {}
    for old, new in TREES.crosswalk.items():
        homes.setdefault(TREES.legacy.province_of(old), set()).add(TREES.v2025.province_of(new))
    assert len(homes) == 63
    assert all(len(provinces) == 1 for provinces in homes.values())
    assert len(set().union(*homes.values())) == 34


# --- the build rules, on a tiny made-up source ---


def _tiny_source(converter: dict[str, Any]) -> Source:
    """Made-up units (not real data): two communes and one ward-less island district."""
    legacy = (
        LegacyRow("01", "Tỉnh A", "tinha", "001", "Huyện B", "huyenb", "00001", "Xã C", "xac"),
        LegacyRow("01", "Tỉnh A", "tinha", "001", "Huyện B", "huyenb", "00002", "Xã D", "xad"),
        LegacyRow("01", "Tỉnh A", "tinha", "002", "Huyện Đảo", "huyendao", None, None, None),
    )
    v2025 = (
        Row2025("01", "Tỉnh A", "tinha", "00001", "Xã C", "xac"),
        Row2025("02", "Tỉnh E", "tinhe", "00009", "Xã F", "xaf"),
    )
    return Source(legacy, v2025, parse_converter(converter))


def _converter(undivided: dict[str, Any], divided: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "DICT_PROVINCE": {"tinha": ["tinha"], "tinhe": []},
        "DICT_PROVINCE_WARD_NO_DIVIDED": undivided,
        "DICT_PROVINCE_WARD_DIVIDED": divided or {},
    }


def _cands(*defaults: tuple[str, bool]) -> list[dict[str, Any]]:
    return [{"newWardKey": key, "isDefaultNewWard": is_default} for key, is_default in defaults]


def test_build_maps_undivided_divided_and_island_units() -> None:
    trees = build_org_trees(
        _tiny_source(
            _converter(
                {"tinha": {"xac": ["tinha_huyenb_xac", "tinha_huyendao_"]}},
                {"tinha": {"tinha_huyenb_xad": _cands(("xaz", False), ("xac", True))}},
            )
        )
    )
    assert dict(trees.crosswalk) == {"C00001": "C00001", "D002": "C00001", "C00002": "C00001"}
    assert trees.divided == {"C00002"}
    assert trees.crosswalk_exceptions == {}
    assert trees.legacy.attachable("D002")
    assert not trees.legacy.attachable("D001")


@pytest.mark.parametrize(
    ("converter", "reason"),
    [
        (_converter({"tinha": {"xac": ["tinha_huyenb_xac", "tinha_huyendao_"]}}), "absent"),
        (
            _converter(
                {"tinha": {"xac": ["tinha_huyenb_xac", "tinha_huyendao_", "tinha_huyenb_xad"]}},
                {"tinha": {"tinha_huyenb_xad": _cands(("xac", True))}},
            ),
            "both",
        ),
        (
            _converter(
                {"tinha": {"xac": ["tinha_huyenb_xac", "tinha_huyendao_"]}},
                {"tinha": {"tinha_huyenb_xad": _cands(("xac", True), ("xaz", True))}},
            ),
            "2 default",
        ),
        (
            _converter(
                {"tinha": {"xac": ["tinha_huyenb_xac", "tinha_huyendao_"], "xaz": ["tinha_huyenb_xad"]}}
            ),
            "does not list",
        ),
        (
            _converter(
                {
                    "tinha": {"xac": ["tinha_huyenb_xac", "tinha_huyendao_"]},
                    "tinhe": {"xaf": ["tinha_huyenb_xad"]},
                }
            ),
            "became tinha",
        ),
        (
            _converter(
                {
                    "tinha": {
                        "xac": ["tinha_huyenb_xac", "tinha_huyendao_", "tinha_huyenb_xad"],
                        "xaf": ["tinha_huyenb_xad"],
                    }
                }
            ),
            "under 2 new wards",
        ),
    ],
)
def test_build_explains_each_unit_without_a_home(converter, reason) -> None:
    trees = build_org_trees(_tiny_source(converter))
    assert set(trees.crosswalk_exceptions) == {"C00002"}
    assert reason in trees.crosswalk_exceptions["C00002"]
    assert trees.to_2025("C00002") is None


def test_tree_refuses_a_broken_shape() -> None:
    root = Unit("VN", "Việt Nam", "national", "legacy", None)
    province = Unit("P01", "Tỉnh A", "province", "legacy", "VN")
    with pytest.raises(ValueError, match="duplicate"):
        OrgTree("legacy", [root, province, province])
    with pytest.raises(ValueError, match="no valid parent"):
        OrgTree("legacy", [root, Unit("D001", "Huyện B", "district", "legacy", "P99")])
    with pytest.raises(ValueError, match="no valid parent"):
        OrgTree("legacy", [root, province, Unit("P02", "Tỉnh X", "province", "legacy", "P01")])
    with pytest.raises(ValueError, match="root"):
        OrgTree("legacy", [province])
    with pytest.raises(ValueError, match="2025 tree"):
        OrgTree("legacy", [root, dataclasses.replace(province, tree="2025")])


def test_trees_refuse_a_crosswalk_to_a_non_commune() -> None:
    with pytest.raises(ValueError, match="attachable"):
        OrgTrees(TREES.legacy, TREES.v2025, crosswalk={"C06901": "P22"})
    with pytest.raises(ValueError, match="order"):
        OrgTrees(TREES.v2025, TREES.legacy)


# --- purity ---

FORBIDDEN = {"faststream", "aiokafka", "sqlalchemy", "fastapi", "starlette", "structlog", "prometheus_client"}
FORBIDDEN |= {"httpx", "logging", "vietnamadminunits"}  # the package's import costs a second: data only


def test_orgtree_imports_no_framework_logging_or_the_heavy_package() -> None:
    package = Path(__file__).resolve().parents[2] / "shared" / "orgtree"
    imported: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "shared" in imported  # the walk really saw the modules
    assert not imported & FORBIDDEN
