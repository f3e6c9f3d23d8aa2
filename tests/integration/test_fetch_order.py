"""Batches taken oldest partition first (`shared.fetch_order`), on the real broker."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.embedded_broker import EmbeddedBroker
from shared.fetch_order import OldestFirst

pytestmark = pytest.mark.integration

PER_PARTITION = 3000
CHUNK = 100
START = 1_700_000_000_000  # ms


def _stamp(partition: int, i: int) -> int:
    """Partitions 0 and 1 interleave in time; partition 2 is entirely later."""
    return START + (10 * i + 5 * partition if partition < 2 else 100_000_000 + i)


@pytest.fixture
async def topic(kafka: EmbeddedBroker) -> str:
    name = f"test.fetch-order.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 3, 1, topic_configs={"retention.ms": "-1"})])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for i in range(PER_PARTITION):
            for partition in range(3):
                value = f"{partition}:{i}".encode()
                await producer.send(name, value, partition=partition, timestamp_ms=_stamp(partition, i))
        await producer.flush()
    finally:
        await producer.stop()
    return name


async def _primed(kafka: EmbeddedBroker, tps: list[TopicPartition]) -> AIOKafkaConsumer:
    """A consumer with each partition's first record taken (aiokafka's own order), so every
    partition's records are held when the ordered batches start: the order is then exact."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    for tp in tps:
        first = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
        assert [r.offset for r in first[tp]] == [0]
    return consumer


async def test_batches_take_the_oldest_partition_first_and_every_record_once(
    kafka: EmbeddedBroker, topic: str
) -> None:
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer = await _primed(kafka, tps)
    try:
        OldestFirst.install(consumer).chunk = CHUNK
        batches: list[list[Any]] = []
        while sum(map(len, batches)) < 3 * (PER_PARTITION - 1):
            fetched = await consumer.getmany(timeout_ms=5_000, max_records=1_000)
            assert fetched, "records left on the topic but none came"
            batches.append([r for records in fetched.values() for r in records])
    finally:
        await consumer.stop()

    taken = [r for batch in batches for r in batch]
    for partition in range(3):  # every record once, in the log's order
        offsets = [r.offset for r in taken if r.partition == partition]
        assert offsets == list(range(1, PER_PARTITION))
    assert all(len(batch) == 1_000 for batch in batches[:-1])
    # a chunk of each partition to learn where it is; then partition 2 (entirely later) waits
    # while 0 and 1 have records, and those two alternate a chunk at a time
    left = {0: PER_PARTITION - 1, 1: PER_PARTITION - 1}
    for i, batch in enumerate(batches):
        counts = Counter(r.partition for r in batch)
        left = {p: n - counts[p] for p, n in left.items()}
        if i == 0:
            assert counts[2] == CHUNK
        elif left[0] and left[1]:
            assert counts[2] == 0
            assert abs(counts[0] - counts[1]) <= CHUNK
    spans = [max(r.timestamp for r in b) - min(r.timestamp for r in b) for b in batches[1:5]]
    assert max(spans) <= 10 * (1_000 // 2 + CHUNK)  # one partition alone: 10 * 1,000


async def test_plain_getmany_takes_one_partition_backlog(kafka: EmbeddedBroker, topic: str) -> None:
    """The behaviour replaced, so the test above is known to tell them apart."""
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer = await _primed(kafka, tps)
    try:
        fetched = await consumer.getmany(timeout_ms=5_000, max_records=1_000)
    finally:
        await consumer.stop()
    assert len(fetched) == 1
    assert sum(map(len, fetched.values())) == 1_000


async def test_install_once_per_consumer(kafka: EmbeddedBroker) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    OldestFirst.install(consumer)
    installed = consumer.getmany
    OldestFirst.install(consumer)
    await consumer.stop()
    assert consumer.getmany == installed
    assert isinstance(installed.__self__, OldestFirst)
