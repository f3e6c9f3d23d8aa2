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

from shared.db import make_engine, migrate
from shared.embedded_broker import EmbeddedBroker
from shared.kafka import make_producer
from shared.outbox import MESSAGE_ID_HEADER, PACK_SIZE, OutboxMessage, OutboxRelay, enqueue
from shared.settings import Settings
from shared.topics import REJECTED
from tests.integration.outboxes import records_on_topic, service_outbox

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
        table = service_outbox(service)
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
    records = await records_on_topic(kafka.bootstrap, REJECTED, lambda r: r.value in wanted)
    assert {r.value for r in records} == wanted


@pytest.mark.parametrize("service", ["quota", "reporting"])
async def test_packed_rows_are_published_message_by_message_in_order(
    kafka: EmbeddedBroker, database_url: str, service: str
) -> None:
    """A batch's messages share rows (PACK_SIZE at most each); the relay claims rows by a
    message budget, sends each message once with its own id, in enqueue order per key."""
    engine = make_engine(database_url)
    producer = make_producer(Settings(kafka_bootstrap=kafka.bootstrap, service="test"))
    await producer.start()
    run = uuid.uuid4().hex
    keys = [f"{run}-key-{k}".encode() for k in range(7)]
    count = PACK_SIZE * 2 + 10
    messages = [
        OutboxMessage(REJECTED, keys[i % 7], f"{run}-{i:06d}".encode(), (("n", str(i)),))
        for i in range(count)
    ]
    try:
        await migrate(engine, service)
        table = service_outbox(service)
        async with engine.begin() as connection:
            await enqueue(connection, table, messages[:-1])
        async with engine.begin() as connection:
            await enqueue(connection, table, messages[-1:])  # a plain row after the packed ones
        relay = OutboxRelay(engine, producer, table, service, batch_size=3000)
        passes = []
        while published := await relay.publish_once():
            passes.append(published)
    finally:
        await producer.stop()
        await engine.dispose()
    # a pass takes whole rows, at least one, until the budget: the plain row goes with the 9
    assert passes == [PACK_SIZE, PACK_SIZE, 10]
    records = await records_on_topic(kafka.bootstrap, REJECTED, lambda r: r.value.startswith(run.encode()))
    assert sorted(r.value for r in records) == [m.value for m in messages]
    for key in keys:  # per key (one partition each), in enqueue order
        values = [r.value for r in records if r.key == key]
        assert values == sorted(values)
    ids = [dict(r.headers)[MESSAGE_ID_HEADER].decode() for r in records]
    assert len(set(ids)) == count
    assert all(i.startswith(f"{service}:") for i in ids)
    assert all(dict(r.headers)["n"] == str(int(r.value.decode()[-6:])).encode() for r in records)
