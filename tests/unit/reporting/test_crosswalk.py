"""The CrossWalk of the official trees: certain containers only."""

from __future__ import annotations

import pytest

from services.reporting.domain.crosswalk import OrgTreesCrossWalk
from shared.orgtree import load_org_trees

pytestmark = pytest.mark.unit

TREES = load_org_trees()
CROSSWALK = OrgTreesCrossWalk(TREES)


def test_a_whole_legacy_commune_lies_in_its_2025_commune() -> None:
    assert CROSSWALK.containers("legacy", "C06901") == {"C06913"}  # Xã Quảng An -> Xã Quảng Tân
    assert CROSSWALK.containers("legacy", "C02680") == {"C02680"}  # Xã Hợp Thành keeps its code


def test_a_divided_legacy_commune_only_lies_certainly_in_its_successor_province() -> None:
    divided = sorted(TREES.divided)[0]
    province = TREES.v2025.province_of(TREES.to_2025(divided) or "")
    assert CROSSWALK.containers("legacy", divided) == {province}


def test_legacy_districts_and_provinces_lie_in_the_successor_province() -> None:
    assert CROSSWALK.containers("legacy", "D200") == {"P22"}
    assert CROSSWALK.containers("legacy", "P10") == {"P15"}
    assert CROSSWALK.successor_province("P15") == "P15"  # Yên Bái and Lào Cai merged into P15 Lào Cai


def test_every_legacy_province_has_exactly_one_successor() -> None:
    for province in TREES.legacy.units("province"):
        successor = CROSSWALK.successor_province(province.id)
        assert successor is not None
        assert TREES.v2025.unit(successor).level == "province"


def test_a_2025_unit_lies_in_the_legacy_provinces_that_merged_into_its_province() -> None:
    assert CROSSWALK.containers("2025", "C06913") == {"P22"}  # Quảng Ninh did not merge
    assert CROSSWALK.containers("2025", "P15") == {"P10", "P15"}
    assert CROSSWALK.containers("2025", "C02680") == {"P10", "P15"}


@pytest.mark.parametrize(
    ("tree", "unit_id"), [("legacy", "VN"), ("2025", "VN"), ("legacy", "C99999"), ("2025", "D200")]
)
def test_unknown_units_and_the_root_have_no_container(tree: str, unit_id: str) -> None:
    assert CROSSWALK.containers(tree, unit_id) == frozenset()  # type: ignore[arg-type]
