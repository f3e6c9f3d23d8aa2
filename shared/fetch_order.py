"""Batches that take the oldest records first across partitions, not one partition's backlog.

aiokafka's ``getmany(max_records=N)`` drains the records it holds partition by
partition: the first partition's whole fetch, then the next. A broker that answers a
fetch with a partition's whole backlog (the embedded Tansu ignores
``max_partition_fetch_bytes``) so gives a batch of 20,000 tally changes from one
partition of twelve: 25 days of a replayed year where the six partitions together
hold 4. Every aggregate row a batch touches is written once per batch, so a batch
spread over six times the days wrote about three times the daily rows of ``VN`` and the
provinces (1.33 million updates against 0.46 million for the same 1.08 million
changes, 2026-12-07), and the partitions drifted weeks apart.

:class:`OldestFirst` fills a batch in chunks, each from the partition whose last taken
record is the oldest (its Kafka timestamp), as Kafka Streams orders its partitions by
timestamp: a partition that got ahead waits, with its records still buffered, while
the others catch up; a partition with nothing buffered is skipped, never waited for.
Within a partition the order is the log's, and nothing is taken twice or skipped:
every chunk is aiokafka's own ``getmany`` on that one partition.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition

CHUNK: Final = 500
"""Records taken from a partition at a time: the grain of the order (a day of a national
replay is ~10,000 changes over twelve partitions)."""

Fetched = dict[TopicPartition, list[Any]]


class OldestFirst:
    """``getmany`` for one consumer: a batch filled oldest partition first, ``CHUNK`` at a time."""

    def __init__(self, consumer: AIOKafkaConsumer, chunk: int = CHUNK) -> None:
        self.consumer, self.chunk = consumer, chunk
        self.last: dict[TopicPartition, int] = {}  # the timestamp of the last record taken
        self.served = 0  # batches given (not empty)

    @classmethod
    def install(cls, consumer: AIOKafkaConsumer) -> OldestFirst:
        """Make ``consumer.getmany`` (what FastStream's batch subscriber calls) this order.

        On the instance, because FastStream builds the consumer itself and offers no way to
        choose its class; once per consumer."""
        installed = getattr(consumer.getmany, "__self__", None)
        if isinstance(installed, cls):
            return installed
        order = cls(consumer)
        consumer.getmany = order.getmany
        return order

    async def _take(self, *tps: TopicPartition, timeout_ms: int, max_records: int) -> Fetched:
        """aiokafka's own ``getmany`` (the class's: the instance's is this one)."""
        fetched: Fetched = await AIOKafkaConsumer.getmany(
            self.consumer, *tps, timeout_ms=timeout_ms, max_records=max_records
        )
        return fetched

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Fetched:
        wanted = max_records or 1 << 30
        batch: Fetched = {}
        try:
            await self._fill(batch, set(partitions or self.consumer.assignment()), wanted)
            if not batch and timeout_ms:
                # Nothing held yet: wait for the first records, then go on filling in order
                # (over the partitions held then: a rebalance may have ended meanwhile).
                first = await self._take(
                    *partitions, timeout_ms=timeout_ms, max_records=min(self.chunk, wanted)
                )
                for tp, records in first.items():
                    self._add(batch, tp, records)
                await self._fill(batch, set(partitions or self.consumer.assignment()), wanted)
        except Exception:
            # A partition's error after other partitions' records were taken: aiokafka would
            # return those and raise on the next call; this call raises, so they are put back
            # (the positions moved past them) and come again: none is skipped.
            seek_back(self.consumer, {tp: records[0].offset for tp, records in batch.items()})
            raise
        self.served += bool(batch)
        return batch

    async def _fill(self, batch: Fetched, open_: set[TopicPartition], wanted: int) -> None:
        while open_ and (left := wanted - sum(map(len, batch.values()))) > 0:
            tp = min(open_, key=self._age)
            fetched = await self._take(tp, timeout_ms=0, max_records=min(self.chunk, left))
            if records := fetched.get(tp):
                self._add(batch, tp, records)
            else:
                open_.discard(tp)  # nothing buffered: not waited for

    def _add(self, batch: Fetched, tp: TopicPartition, records: list[Any]) -> None:
        batch.setdefault(tp, []).extend(records)
        self.last[tp] = records[-1].timestamp

    def _age(self, tp: TopicPartition) -> tuple[int, str, int]:
        """Oldest first; a partition not taken from yet before any other."""
        return (self.last.get(tp, -1), tp.topic, tp.partition)


def seek_back(consumer: AIOKafkaConsumer, firsts: Mapping[TopicPartition, int]) -> None:
    """Seek each partition back to its offset, so what was taken from there comes again."""
    for tp, offset in firsts.items():
        with contextlib.suppress(Exception):  # partition already revoked: its next owner starts there
            consumer.seek(tp, offset)
