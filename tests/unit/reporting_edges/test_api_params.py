"""The OpenAPI parameters say exactly what the service accepts (issue 7, fuzzing).

A period matching ``PERIOD_PATTERN`` parses unless it is a reversed range (the one rule
``format: ketnap-period`` adds); anything that parses matches the pattern. Every unit
id of both trees matches ``UNIT_ID_PATTERN``.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.api import router
from services.reporting.api_params import PERIOD_EXAMPLES, PERIOD_PATTERN, UNIT_ID_PATTERN
from services.reporting.domain import PeriodError, parse_period
from shared.orgtree import load_org_trees

pytestmark = pytest.mark.unit

PERIOD_RE = re.compile(PERIOD_PATTERN)
NEAR_MISSES = st.text(alphabet="0123456789-.HhQqx ", max_size=24)


@given(st.from_regex(PERIOD_RE, fullmatch=True))
def test_a_period_the_pattern_admits_parses_unless_its_range_is_reversed(text: str) -> None:
    left, sep, right = text.partition("..")
    if sep and _sort_key(right) < _sort_key(left):
        with pytest.raises(PeriodError, match="ends before it starts"):
            parse_period(text)
    else:
        parse_period(text)


def _sort_key(end: str) -> str:
    """One end of a range, comparable with another end of the same form (``H``/``Q`` in either case)."""
    return end.upper()


@given(
    st.one_of(NEAR_MISSES, st.text(max_size=24), st.from_regex(PERIOD_RE, fullmatch=True).map("{}1".format))
)
def test_a_period_that_parses_matches_the_pattern(text: str) -> None:
    try:
        parse_period(text)
    except PeriodError:
        return
    assert PERIOD_RE.fullmatch(text), text


@pytest.mark.parametrize("text", ["2000", "2100-Q4", "2024-02-29", "2000-02-29", "2024-h1..2024-H2"])
def test_edges_of_the_pattern_are_accepted(text: str) -> None:
    assert PERIOD_RE.fullmatch(text)
    parse_period(text)


@pytest.mark.parametrize("text", ["1999", "2101", "2100-02-29", "2023-02-29", "2024-04-31", "2024..2024-05"])
def test_refused_periods_are_outside_the_pattern(text: str) -> None:
    assert not PERIOD_RE.fullmatch(text)


def test_the_examples_are_periods() -> None:
    for text in PERIOD_EXAMPLES.values():
        assert parse_period(text).start <= parse_period(text).end
    assert parse_period(PERIOD_EXAMPLES["party term"]).end == date(2025, 12, 31)


def test_every_unit_id_of_both_trees_matches_the_pattern() -> None:
    pattern = re.compile(UNIT_ID_PATTERN)
    trees = load_org_trees()
    for tree in (trees.legacy, trees.v2025):
        assert all(pattern.fullmatch(unit.id) for unit in tree.units()), tree


def test_each_operation_documents_each_of_its_parameters_once() -> None:
    app = FastAPI()
    app.include_router(router)
    documented = {
        path: [p["name"] for p in item["get"]["parameters"]] for path, item in app.openapi()["paths"].items()
    }
    assert documented == {
        "/v1/rollups/{unit_id}": ["unit_id", "period", "tree", "metric", "category"],
        "/v1/lagging": ["unit_id", "years", "tree"],
        "/v1/export": ["unit_id", "period", "format", "tree", "metric", "category"],
    }
