"""Targets: latest time wins, sums over a period's years, attainment rounded half-up."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting.domain.targets import Attainment, Target, TargetBook, TargetKind, attainment_pct

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "target", "pct"),
    [(9, 7, "128.57"), (9, 9, "100.00"), (6, 6, "100.00"), (2, 6, "33.33"), (4, 6, "66.67"), (1, 8, "12.50"),
     (0, 5, "0.00"), (1, 3, "33.33"), (2, 3, "66.67"), (1, 200_000, "0.00"), (1, 20_000, "0.01"),
     (12_345, 1, "1234500.00")],
)  # fmt: skip
def test_attainment_examples(value: int, target: int, pct: str) -> None:
    assert attainment_pct(value, target) == pct


def test_no_attainment_without_target_or_with_zero_target() -> None:
    assert attainment_pct(9, None) is None
    assert attainment_pct(9, 0) is None


def test_half_is_rounded_up_not_to_even() -> None:
    assert attainment_pct(1, 16) == "6.25"  # exact
    assert attainment_pct(1, 32) == "3.13"  # 3.125 -> up (banker's rounding would give 3.12)
    assert attainment_pct(1, 160) == "0.63"  # 0.625 -> up


@given(st.integers(0, 10**30), st.integers(1, 10**30))
def test_attainment_is_the_exact_quotient_rounded_half_up(value: int, target: int) -> None:
    exact = Fraction(value * 100, target)
    floor_hundredths = (exact * 100).numerator // (exact * 100).denominator
    remainder = exact * 100 - floor_hundredths
    expected = floor_hundredths + (1 if remainder >= Fraction(1, 2) else 0)
    assert Decimal(attainment_pct(value, target) or "x") == Decimal(expected).scaleb(-2)
    if value < 10**6 and target < 10**6:  # where Decimal's context is exact enough, they agree
        reference = (Decimal(value) * 100 / Decimal(target)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert attainment_pct(value, target) == str(reference)


def _target(
    year: int, kind: TargetKind, value: int, minute: int = 0, event_id: str = "", **kw: str
) -> Target:
    return Target(
        "C06901",
        "legacy",
        year,
        kind,
        value,
        datetime(2024, 1, 1, 0, minute, tzinfo=UTC),
        event_id=event_id,
        **kw,
    )


def test_the_latest_time_wins_for_the_same_key() -> None:
    book = TargetBook()
    assert book.set(_target(2024, "resolution", 5, minute=10))
    assert not book.set(_target(2024, "resolution", 7, minute=5))
    assert book.total("C06901", "legacy", [2024], "admitted", "all", "resolution") == 5
    assert book.set(_target(2024, "resolution", 7, minute=20))
    assert book.total("C06901", "legacy", [2024], "admitted", "all", "resolution") == 7


@given(st.permutations(list(range(6))))
def test_the_winner_does_not_depend_on_arrival_order(order: list[int]) -> None:
    targets = [_target(2024, "assigned", v, minute=v // 2, event_id=f"e{v}") for v in range(6)]
    book = TargetBook(targets[i] for i in order)
    held = book.get(("C06901", "legacy", 2024, "admitted", "all", "assigned"))
    assert held is not None
    assert held.value == 5


def test_totals_sum_over_the_years_that_have_a_target() -> None:
    book = TargetBook(
        [_target(2021, "resolution", 6), _target(2022, "resolution", 6), _target(2022, "assigned", 4)]
    )
    assert book.total("C06901", "legacy", range(2020, 2026), "admitted", "all", "resolution") == 12
    assert book.total("C06901", "legacy", [2023], "admitted", "all", "resolution") is None
    assert book.total("C06901", "2025", [2021], "admitted", "all", "resolution") is None
    assert book.total("C06901", "legacy", [2021], "admitted", "female", "resolution") is None


def test_keys_include_metric_and_category() -> None:
    book = TargetBook([_target(2024, "resolution", 3, metric="admitted", category="ethnic_minority"),
                       _target(2024, "resolution", 7)])  # fmt: skip
    assert book.total("C06901", "legacy", [2024], "admitted", "ethnic_minority", "resolution") == 3
    assert book.total("C06901", "legacy", [2024], "admitted", "all", "resolution") == 7


def test_attainments_of_the_quang_an_seed() -> None:
    book = TargetBook([_target(2024, "resolution", 7), _target(2024, "assigned", 9)])
    assert book.attainments("C06901", "legacy", [2024], "admitted", "all", 9) == {
        "resolution": Attainment(7, "128.57"),
        "assigned": Attainment(9, "100.00"),
    }


def test_a_zero_target_is_shown_without_attainment_and_a_missing_kind_is_absent() -> None:
    book = TargetBook([_target(2024, "resolution", 0)])
    assert book.attainments("C06901", "legacy", [2024], "admitted", "all", 3) == {
        "resolution": Attainment(0, None)
    }
