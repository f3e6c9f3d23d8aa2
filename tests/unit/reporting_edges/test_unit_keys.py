"""Unit row keys (``services.reporting.unitkeys``): one integer per (tree, unit), both ways."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.unitkeys import key_sql, tree_sql, unit_id_sql, unit_key, unit_of
from shared.orgtree import TreeVersion, load_org_trees

TREES: tuple[TreeVersion, ...] = ("legacy", "2025")
unit_ids = st.one_of(
    st.just("VN"),
    st.integers(0, 99).map(lambda n: f"P{n:02d}"),
    st.integers(0, 999).map(lambda n: f"D{n:03d}"),
    st.integers(0, 99_999).map(lambda n: f"C{n:05d}"),
)


@given(st.sampled_from(TREES), unit_ids)
def test_a_key_gives_back_its_tree_and_unit(tree: TreeVersion, unit_id: str) -> None:
    assert unit_of(unit_key(tree, unit_id)) == (tree, unit_id)


@given(st.sampled_from(TREES), unit_ids, st.sampled_from(TREES), unit_ids)
def test_keys_differ_when_units_do(tree: TreeVersion, unit_id: str, tree_b: TreeVersion, unit_b: str) -> None:
    same = (tree, unit_id) == (tree_b, unit_b)
    assert (unit_key(tree, unit_id) == unit_key(tree_b, unit_b)) is same


def test_every_official_unit_has_a_key_that_fits_int4() -> None:
    trees = load_org_trees()
    units = [(tree, unit.id) for tree in TREES for unit in trees[tree].units()]
    keys = {unit_key(tree, unit_id) for tree, unit_id in units}
    assert len(keys) == len(units) > 14_000
    assert min(keys) >= 0
    assert max(keys) < 2**31


@pytest.mark.parametrize("unit_id", ["", "V", "P1", "P123", "D12", "C1234", "X00001", "c06901", "P0a"])
def test_an_id_of_no_official_form_has_no_key(unit_id: str) -> None:
    with pytest.raises(ValueError, match="not a unit id"):
        unit_key("legacy", unit_id)


@pytest.mark.parametrize("key", [-1, 4_000_000, 9_999_999, 20_000_000, 1_000_100, 2_001_000])
def test_a_number_no_unit_has_is_not_a_key(key: int) -> None:
    with pytest.raises(ValueError, match="not a unit key"):
        unit_of(key)


@given(st.lists(st.tuples(st.sampled_from(TREES), unit_ids), min_size=1, max_size=30))
def test_the_sql_forms_compute_the_same_on_sqlite(units: list[tuple[TreeVersion, str]]) -> None:
    """The migration's SQL (reporting_0007) agrees with the Python both ways (PostgreSQL's
    forms are checked by the migration test on PostgreSQL)."""
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE u (tree TEXT, unit_id TEXT)")
        db.executemany("INSERT INTO u VALUES (?, ?)", units)
        keys = [k for (k,) in db.execute(f"SELECT {key_sql('tree', 'unit_id')} FROM u ORDER BY rowid")]
        assert keys == [unit_key(t, u) for t, u in units]
        keyed = f"SELECT {key_sql('tree', 'unit_id')} AS k FROM u ORDER BY rowid"
        back = db.execute(f"SELECT {tree_sql('k')}, {unit_id_sql('k', 'sqlite')} FROM ({keyed})").fetchall()
        assert back == units
