"""What the consumer works out per batch: each partition's span, record ages, bucket counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from shared.consumer import RECORDED_HEADER, _first_and_last, recorded_at
from shared.metrics import LATENCY_BUCKETS, observe_all

pytestmark = pytest.mark.unit


def record(partition: int, offset: int, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord:
    return ConsumerRecord("t", partition, offset, 1_700_000_000_000, 0, b"k", b"v", None, 1, 1, headers or [])


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50))))
def test_spans_are_each_partitions_lowest_and_highest_offset_in_any_order(
    pairs: list[tuple[int, int]],
) -> None:
    expected: dict[tuple[str, int], tuple[int, int]] = {}
    for partition, offset in pairs:
        low, high = expected.get(("t", partition), (offset, offset))
        expected[("t", partition)] = (min(low, offset), max(high, offset))
    assert _first_and_last([record(p, o) for p, o in pairs]) == expected


def test_the_recorded_time_is_read_once_per_header_value() -> None:
    at = datetime(2026, 12, 7, 14, 0, 0, 123456, tzinfo=UTC)
    header = [(RECORDED_HEADER, at.isoformat().encode())]
    parsed: dict[bytes, float] = {}
    assert recorded_at(record(0, 1, header), parsed) == at.timestamp()
    assert parsed == {at.isoformat().encode(): at.timestamp()}
    parsed[at.isoformat().encode()] = 5.0  # the second record takes the value read for the first
    assert recorded_at(record(0, 2, header), parsed) == 5.0
    assert recorded_at(record(0, 3, [(RECORDED_HEADER, b"not a time")]), parsed) == 1_700_000_000.0
    assert recorded_at(record(0, 4)) == 1_700_000_000.0


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False) | st.sampled_from(LATENCY_BUCKETS)))
def test_observing_all_at_once_equals_observing_one_by_one(amounts: list[float]) -> None:
    registry = CollectorRegistry()
    one_by_one = Histogram("ketnap_a_seconds", "a", buckets=LATENCY_BUCKETS, registry=registry)
    at_once = Histogram("ketnap_b_seconds", "b", buckets=LATENCY_BUCKETS, registry=registry)
    for amount in amounts:
        one_by_one.observe(amount)
    observe_all(at_once, amounts)
    first, second = _samples(one_by_one), _samples(at_once)
    assert {(n.replace("_a_", "_b_"), le): v for (n, le), v in first.items()} == pytest.approx(second)
