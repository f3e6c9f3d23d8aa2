"""The outbox relay against a real broker and each service's migrated outbox table.

Two replicas of a service share one database, so two relays may read the same rows.
On SQLite nothing makes one of them the leader: while one relay waits for the
broker's acknowledgement, the other may publish and delete the same rows. Rows
enqueued after that must not take the ids of the deleted ones, or the first relay's
delete, by id, removes them unpublished (the tally changes lost in the rebalance
scenario on SQLite, docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import Table

from shared.db import make_engine, migrate
from shared.embedded_broker import EmbeddedBroker
from shared.kafka import make_producer
from shared.outbox import OutboxMessage, OutboxRelay, enqueue
from shared.settings import Settings
from shared.topics import REJECTED

pytestmark = pytest.mark.integration


class HeldRelay(OutboxRelay):
    """A relay whose broker acknowledged its rows but which has not deleted them yet."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acknowledged, self.release = asyncio.Event(), asyncio.Event()

    async def _publish(self, rows: Sequence[Any]) -> None:
        await super()._publish(rows)
        self.acknowledged.set()
        await self.release.wait()


def _outbox(service: str) -> Table:
    if service == "quota":
        from services.quota.tables import outbox as quota_outbox

        return quota_outbox
    from services.reporting.tables import outbox as reporting_outbox

    return reporting_outbox


async def _values_on_topic(bootstrap: str, topic: str, wanted: set[bytes]) -> set[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: set[bytes] = set()
    try:
        while batch := await consumer.getmany(timeout_ms=1500, max_records=10_000):
            seen |= {r.value for part in batch.values() for r in part if r.value in wanted}
    finally:
        await consumer.stop()
    return seen


@pytest.mark.parametrize("service", ["quota", "reporting"])
async def test_rows_enqueued_while_another_relay_deletes_are_published(
    kafka: EmbeddedBroker, database_url: str, service: str
) -> None:
    engine = make_engine(database_url)
    producer = make_producer(Settings(kafka_bootstrap=kafka.bootstrap, service="test"))
    await producer.start()
    run = uuid.uuid4().hex
    messages = [OutboxMessage(REJECTED, f"{run}-{i}".encode(), f"{run}-{i}".encode()) for i in range(5)]
    try:
        await migrate(engine, service)
        table = _outbox(service)
        async with engine.begin() as connection:
            await enqueue(connection, table, messages[:3])
        slow = HeldRelay(engine, producer, table, service)
        fast = OutboxRelay(engine, producer, table, service)
        held = asyncio.create_task(slow.publish_once())
        await slow.acknowledged.wait()
        await fast.publish_once()  # SQLite: the same three rows, published and deleted
        async with engine.begin() as connection:
            await enqueue(connection, table, messages[3:])
        slow.release.set()
        await held
        while await fast.publish_once():
            pass
    finally:
        await producer.stop()
        await engine.dispose()
    wanted = {m.value for m in messages}
    assert await _values_on_topic(kafka.bootstrap, REJECTED, wanted) == wanted
