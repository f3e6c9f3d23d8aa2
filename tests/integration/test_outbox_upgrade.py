"""The outbox's packed rows across the upgrade that brought them (quota ``0004``, ``reporting_0004``).

Rows enqueued by the release before are published after the upgrade as they were; a
writer of that release can no longer add rows (``value`` is gone) rather than have its
relay publish a packed row as one message; a downgrade refuses while packed rows wait.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_engine, migrate, run_migrations
from shared.embedded_broker import EmbeddedBroker
from shared.kafka import make_producer
from shared.outbox import MESSAGE_ID_HEADER, OutboxMessage, OutboxRelay, enqueue
from shared.settings import Settings
from shared.topics import REJECTED
from tests.integration.outboxes import records_on_topic, service_outbox

pytestmark = pytest.mark.integration

BEFORE = {"quota": "0003_quota_outbox_ids", "reporting": "reporting_0003"}


async def _revision(engine: AsyncEngine, service: str) -> tuple[str, list[str]]:
    """The recorded revision and the service's tables with their columns, as the database has them."""

    def read(connection: Connection) -> tuple[str, list[str]]:
        version = connection.execute(text(f"SELECT version_num FROM alembic_version_{service}")).scalar_one()
        schema = inspect(connection)
        tables = [t for t in schema.get_table_names() if t.startswith(f"{service}_")]
        columns = [f"{t}.{c['name']}" for t in sorted(tables) for c in schema.get_columns(t)]
        return version, columns

    async with engine.connect() as connection:
        return await connection.run_sync(read)


def _old_insert(service: str, value: bytes) -> tuple[str, dict[str, object]]:
    return (
        f"INSERT INTO {service}_outbox (topic, key, value, headers, created_at) "
        "VALUES (:topic, :key, :value, :headers, :at)",
        {"topic": REJECTED, "key": value, "value": value, "headers": '[["h","1"]]', "at": datetime.now(UTC)},
    )


@pytest.mark.parametrize("service", ["quota", "reporting"])
async def test_rows_of_the_release_before_are_published_after_the_upgrade(
    kafka: EmbeddedBroker, database_url: str, service: str
) -> None:
    engine = make_engine(database_url)
    value = f"before-{uuid.uuid4().hex}".encode()
    producer = make_producer(Settings(kafka_bootstrap=kafka.bootstrap, service="test"))
    await producer.start()
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, service, BEFORE[service])
            statement, values = _old_insert(service, value)
            await connection.execute(text(statement), values)
        await migrate(engine, service)
        with pytest.raises(DBAPIError):  # the old release's writer fails instead
            async with engine.begin() as connection:
                await connection.execute(text(statement), values)
        relay = OutboxRelay(engine, producer, service_outbox(service), service)
        assert await relay.publish_once() == 1
    finally:
        await producer.stop()
        await engine.dispose()
    found = await records_on_topic(kafka.bootstrap, REJECTED, lambda r: r.value == value)
    assert len(found) == 1
    headers = dict(found[0].headers)
    assert headers["h"] == b"1"
    assert headers[MESSAGE_ID_HEADER].decode().startswith(f"{service}:")
    assert "." not in headers[MESSAGE_ID_HEADER].decode()


@pytest.mark.parametrize("service", ["quota", "reporting"])
async def test_a_downgrade_waits_for_packed_rows_to_be_published(database_url: str, service: str) -> None:
    engine = make_engine(database_url)
    try:
        await migrate(engine, service)
        async with engine.begin() as connection:
            messages = [OutboxMessage(REJECTED, b"k", str(i).encode()) for i in range(3)]
            await enqueue(connection, service_outbox(service), messages)
        head = await _revision(engine, service)
        with pytest.raises(RuntimeError, match="packed rows"):
            async with engine.begin() as connection:
                await connection.run_sync(run_migrations, service, BEFORE[service], down=True)
        assert await _revision(engine, service) == head  # the refusal undid the whole downgrade
        async with engine.begin() as connection:
            await connection.execute(text(f"DELETE FROM {service}_outbox"))
            await connection.run_sync(run_migrations, service, BEFORE[service], down=True)
            statement, values = _old_insert(service, b"after the downgrade")
            await connection.execute(text(statement), values)
    finally:
        await engine.dispose()
