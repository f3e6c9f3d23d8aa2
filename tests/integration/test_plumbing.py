"""The shared plumbing against real things: the embedded broker and a real database."""

from __future__ import annotations

import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text

from shared.db import make_engine, migrate, ping
from shared.embedded_broker import EmbeddedBroker
from shared.kafka import broker_ping, make_producer
from shared.settings import Settings
from shared.topics import CANDIDATE_EVENTS, TOPICS

pytestmark = pytest.mark.integration


async def test_topics_exist_with_their_partitions(kafka: EmbeddedBroker) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        described = {
            t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([t.name for t in TOPICS])
        }
    finally:
        await admin.close()
    assert described == {t.name: t.partitions for t in TOPICS}


async def test_message_round_trips_through_the_broker(kafka: EmbeddedBroker) -> None:
    settings = Settings(kafka_bootstrap=kafka.bootstrap, service="test")
    producer = make_producer(settings)
    await producer.start()
    key, value = f"cand-{uuid.uuid4().hex}".encode(), orjson.dumps({"hello": "Quảng An"})
    try:
        await broker_ping(producer)
        sent = await producer.send_and_wait(CANDIDATE_EVENTS, value, key=key)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        tp = TopicPartition(CANDIDATE_EVENTS, sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        batch = await consumer.getmany(tp, timeout_ms=5000)
    finally:
        await consumer.stop()
    (record,) = batch[tp][:1]
    assert (record.key, orjson.loads(record.value)) == (key, {"hello": "Quảng An"})


@pytest.mark.parametrize("service", ["intake", "quota", "reporting"])
async def test_migrations_run_twice_without_harm(database_url: str, service: str) -> None:
    engine = make_engine(database_url)
    try:
        await migrate(engine, service)
        await migrate(engine, service)
        await ping(engine)
        async with engine.connect() as connection:
            version = await connection.execute(text(f"SELECT count(*) FROM alembic_version_{service}"))
            assert version.scalar_one() <= 1
    finally:
        await engine.dispose()
