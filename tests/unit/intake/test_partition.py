"""The fast murmur2 partitioner agrees with aiokafka's (the Java client's) on every key."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from hypothesis import given
from hypothesis import strategies as st

from services.intake.partition import murmur2, murmur2_many, partition_for

pytestmark = pytest.mark.unit


@given(st.binary(max_size=300))
def test_same_hash_as_aiokafka(key: bytes) -> None:
    assert murmur2(key) == reference(key)


@given(st.text(max_size=60), st.sampled_from([1, 3, 12]))
def test_same_partition_as_the_default_partitioner(subject: str, count: int) -> None:
    key, partitions = subject.encode(), list(range(count))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_known_values_of_the_java_client() -> None:
    # org.apache.kafka.common.utils.Utils.murmur2 test vectors (as unsigned ints)
    assert murmur2(b"21") == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") == (-985981536) & 0xFFFFFFFF
    assert murmur2(b"") == 275646681


@given(st.lists(st.binary(max_size=40), min_size=60, max_size=300))
def test_hashing_many_keys_at_once_agrees_key_by_key(keys: list[bytes]) -> None:
    assert murmur2_many(keys) == [reference(k) for k in keys]


def test_hashing_many_keys_of_one_length() -> None:
    keys = [f"cand-{n:012x}".encode() for n in range(1000)]
    assert murmur2_many(keys) == [reference(k) for k in keys]
