"""The order of `shared.fetch_order.OldestFirst`, over partitions held in memory (the real
broker: tests/integration/test_fetch_order.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.fetch_order import Fetched, OldestFirst


@dataclass
class _Record:
    partition: int
    offset: int
    timestamp: int


class _Seeking:
    """Records seeks; a partition in ``revoked`` refuses them, as aiokafka's seek does."""

    def __init__(self, revoked: frozenset[int] = frozenset()) -> None:
        self.seeks: list[tuple[int, int]] = []
        self.revoked = revoked

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp.partition in self.revoked:
            raise RuntimeError("partition is not assigned")
        self.seeks.append((tp.partition, offset))


class _Held(OldestFirst):
    """Records "buffered" per partition; ``arriving`` come only to a call that waits."""

    def __init__(
        self,
        held: dict[int, list[int]],
        arriving: dict[int, list[int]],
        chunk: int,
        failing: int = -1,
        revoked: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(consumer=_Seeking(revoked), chunk=chunk)
        self.failing = failing
        self.held = {
            TopicPartition("t", p): [_Record(p, i, ts) for i, ts in enumerate(s)] for p, s in held.items()
        }
        self.arriving = arriving
        self.waits = 0

    async def _take(self, *tps: TopicPartition, timeout_ms: int, max_records: int) -> Fetched:
        if timeout_ms:
            self.waits += 1
            for p, stamps in self.arriving.items():
                self.held[TopicPartition("t", p)] = [_Record(p, i, ts) for i, ts in enumerate(stamps)]
            self.arriving = {}
        if tps and tps[0].partition == self.failing:
            raise RuntimeError("the partition's fetch failed")
        for tp in tps or sorted(self.held, key=lambda t: t.partition):
            if self.held.get(tp):
                taken, self.held[tp] = self.held[tp][:max_records], self.held[tp][max_records:]
                return {tp: taken}
        return {}


def _parts(fetched: Fetched) -> dict[int, list[int]]:
    return {tp.partition: [r.offset for r in records] for tp, records in fetched.items()}


async def _getmany(order: _Held, **kw: Any) -> Fetched:
    partitions = [TopicPartition("t", p) for p in range(3)]
    return await order.getmany(*partitions, **kw)


async def test_a_partition_ahead_waits_for_the_others() -> None:
    order = _Held({0: [100, 101, 102, 103], 1: [1, 2, 3, 4], 2: [50, 51, 52, 53]}, {}, chunk=1)
    first = await _getmany(order, max_records=3)  # one of each, to learn where each is
    assert _parts(first) == {0: [0], 1: [0], 2: [0]}
    second = await _getmany(order, max_records=4)
    assert _parts(second) == {1: [1, 2, 3], 2: [1]}  # 1 is oldest until it runs out


async def test_nothing_held_waits_once_then_fills_in_order() -> None:
    order = _Held({}, {0: [10, 11, 12], 1: [1, 2, 3]}, chunk=2)
    fetched = await _getmany(order, timeout_ms=100, max_records=5)
    assert order.waits == 1
    assert sum(map(len, fetched.values())) == 5
    assert _parts(fetched)[1] == [0, 1, 2]


async def test_nothing_anywhere_gives_nothing() -> None:
    order = _Held({}, {}, chunk=2)
    assert await _getmany(order, timeout_ms=100, max_records=5) == {}
    assert await _getmany(order, max_records=5) == {}
    assert order.waits == 1


async def test_an_error_after_other_records_puts_them_back() -> None:
    """aiokafka raises a partition's error only when nothing was taken yet; here a batch may
    have taken records already: the call raises and they are fetched again, none skipped."""
    order = _Held({0: [5, 6, 7], 1: [1, 2]}, {}, chunk=2, failing=2)
    with pytest.raises(RuntimeError):
        await _getmany(order, max_records=10)
    assert sorted(order.consumer.seeks) == [(0, 0), (1, 0)]


async def test_a_revoked_partition_does_not_keep_the_others_from_being_put_back() -> None:
    order = _Held({0: [5, 6, 7], 1: [1, 2]}, {}, chunk=2, failing=2, revoked=frozenset({0}))
    with pytest.raises(RuntimeError, match="fetch failed"):  # the fetch's error, not the seek's
        await _getmany(order, max_records=10)
    assert order.consumer.seeks == [(1, 0)]
