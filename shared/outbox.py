"""The transactional outbox [hộp thư đi]: what a service publishes is first a row in its database.

A handler writes its outgoing messages with :func:`enqueue` in the SAME transaction as
the effect that caused them, so a message exists if and only if its effect committed.
The :class:`OutboxRelay` then publishes the rows in id order with ``acks=all`` and
deletes them. Guarantees:

- at least once: a row is deleted only after the broker acknowledged it; a crash in
  between publishes it again, with the same ``message-id`` header
  (``<service>:<row id>``) so consumers can deduplicate;
- in order: one relay at a time publishes (a PostgreSQL advisory lock; rows claimed
  ``FOR UPDATE SKIP LOCKED`` as well), rows in id order, as whole batches per
  partition (the default partitioner's choice for the key); a row is written after
  the row locks of its effect are held, so per key the id order is the order of the
  changes. On SQLite the replicas' relays may publish the same rows twice (no
  leader), never lose one: ids are never reused (``AUTOINCREMENT``), so a relay's
  delete by id cannot hit rows enqueued after another relay deleted its rows;
- never blocking the writer: a broker outage only grows the backlog
  (``ketnap_outbox_backlog``); the relay retries at most once per second.

A row holds one message, or several of one topic (``messages`` > 1: ``payload`` and
``headers`` are their packed list, :func:`pack`): a quota batch writes ~2.5 tally changes per event, and one
row per batch instead of one per change took ~14 us of PostgreSQL and ~7 us of the
writer's Python per event off a replay (2026-12-06). A packed row's messages go out in
list order, each with ``message-id`` ``<service>:<row id>.<index>``.

Table per service, ``<service>_outbox``; each service creates it in its own migration
with the columns of :func:`outbox_table`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import lz4_available
from shared.logging import get_logger
from shared.metrics import OUTBOX_BACKLOG

log = get_logger(__name__)

MESSAGE_ID_HEADER = "message-id"


class OutboxMessage(NamedTuple):
    """One message to publish: ``headers`` are (name, text value) pairs.

    A named tuple: a quota batch builds one per changed tally (~2.5 per event), and a
    tuple is built in a tenth of a frozen dataclass's time.
    """

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, str], ...] = ()


def rebuild_outbox_ids_on_sqlite(service: str, autoincrement: bool) -> None:
    """For a migration: rebuild ``<service>_outbox`` on SQLite with (or without)
    ``AUTOINCREMENT``, its rows kept; PostgreSQL's sequence never reuses an id anyway."""
    from alembic import op  # only inside a migration

    if op.get_bind().dialect.name != "sqlite":
        return
    kwargs = {"sqlite_autoincrement": True} if autoincrement else {}
    with op.batch_alter_table(f"{service}_outbox", recreate="always", table_kwargs=kwargs):
        pass


def outbox_table(metadata: MetaData, service: str) -> Table:
    """``<service>_outbox``: rows waiting to be published, in id order."""
    return Table(
        f"{service}_outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("topic", Text, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("messages", Integer, nullable=False, server_default=text("1")),
        sqlite_autoincrement=True,
    )


def add_packed_outbox_rows(service: str) -> None:
    """For a migration: rows of several messages in ``<service>_outbox``.

    ``messages`` counts a row's messages; ``value`` becomes ``payload`` (lz4 on PostgreSQL
    where the server has it: a packed row is up to ~1 MB), so that a relay or writer of
    an older release fails on the table instead of publishing a packed row as one
    message: during a rolling update the old replicas' batches and relay passes fail
    and are retried until they stop, and the new ones publish everything.
    """
    from alembic import op  # only inside a migration

    # SQLite rebuilds the table: its ids must stay AUTOINCREMENT (never reused, see above)
    with op.batch_alter_table(f"{service}_outbox", table_kwargs=_KEEP_AUTOINCREMENT) as table:
        table.alter_column("value", new_column_name="payload")
        table.add_column(Column("messages", Integer, nullable=False, server_default=text("1")))
    if lz4_available(op.get_bind()):
        op.execute(f"ALTER TABLE {service}_outbox ALTER COLUMN payload SET COMPRESSION lz4")


def drop_packed_outbox_rows(service: str) -> None:
    """For a downgrade: only when the outbox holds no packed row (else it fails)."""
    from alembic import op

    bind = op.get_bind()
    if bind.execute(text(f"SELECT 1 FROM {service}_outbox WHERE messages > 1")).first() is not None:
        raise RuntimeError(f"{service}_outbox holds packed rows: let the relay publish them first")
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {service}_outbox ALTER COLUMN payload SET COMPRESSION default")
    with op.batch_alter_table(f"{service}_outbox", table_kwargs=_KEEP_AUTOINCREMENT) as table:
        table.drop_column("messages")
        table.alter_column("payload", new_column_name="value")


_KEEP_AUTOINCREMENT = {"sqlite_autoincrement": True}

PACK_SIZE = 5000
"""Messages at most in one outbox row (and about what the relay publishes in one pass)."""


def pack(messages: Sequence[OutboxMessage]) -> tuple[bytes, str]:
    """Several messages of one topic as one row's ``payload`` and ``headers``.

    ``payload``: the messages' values one after the other; ``headers``: JSON
    ``[header sets, [[key, value length, header set index], ...]]``, keys as latin-1 text
    (any bytes, one character each). A quota batch's tally changes share one header set
    per source event, so each set is written, and encoded by the relay, once.
    """
    sets: dict[tuple[tuple[str, str], ...], int] = {}
    index = [
        (
            m.key.decode("latin-1") if m.key is not None else None,
            len(m.value),
            sets.setdefault(m.headers, len(sets)),
        )
        for m in messages
    ]
    return b"".join(m.value for m in messages), orjson.dumps([list(sets), index]).decode()


def unpack(payload: bytes, headers: str) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    """The (key, value, headers) of a packed row, in the order :func:`pack` was given them."""
    sets, index = orjson.loads(headers)
    encoded = [[(name, text.encode()) for name, text in pairs] for pairs in sets]
    out = []
    at = 0
    for key, size, which in index:
        raw_key = key.encode("latin-1") if key is not None else None
        out.append((raw_key, payload[at : at + size], encoded[which]))
        at += size
    return out


def outbox_rows(messages: Sequence[OutboxMessage]) -> list[tuple[str, bytes | None, bytes, str | None, int]]:
    """(topic, key, payload, headers, messages) per row: runs of one topic packed by up to
    :data:`PACK_SIZE`, a run of one as a plain row."""
    rows = []
    start = 0
    while start < len(messages):
        topic = messages[start].topic
        end = start + 1
        while end < len(messages) and end - start < PACK_SIZE and messages[end].topic == topic:
            end += 1
        if end - start == 1:
            m = messages[start]
            rows.append((topic, m.key, m.value, orjson.dumps(m.headers).decode() if m.headers else None, 1))
        else:
            rows.append((topic, None, *pack(messages[start:end]), end - start))
        start = end
    return rows


async def enqueue(connection: AsyncConnection, table: Table, messages: Sequence[OutboxMessage]) -> None:
    """Add messages to the outbox inside the caller's transaction (one statement)."""
    if not messages:
        return
    now = datetime.now(UTC)
    rows = outbox_rows(messages)
    if connection.dialect.name == "postgresql":
        await _enqueue_postgres(connection, table, rows, now)
        return
    names = ("topic", "key", "payload", "headers", "messages")
    await connection.execute(insert(table), [dict(zip(names, r, strict=True), created_at=now) for r in rows])


async def _enqueue_postgres(
    connection: AsyncConnection, table: Table, rows: Sequence[tuple[Any, ...]], now: datetime
) -> None:
    """Binary COPY on the driver's connection, in the caller's transaction, rows in list order.

    Keys and values go as they are (no hex or JSON around them): a third of the CPU of the
    JSON parameter it replaces, on both sides. Ids come from the sequence row by row, so
    the id order is the list order.
    """
    driver = await _driver_in_transaction(connection)
    await driver.copy_records_to_table(
        table.name,
        records=[(*row, now) for row in rows],
        columns=("topic", "key", "payload", "headers", "messages", "created_at"),
    )


async def _driver_in_transaction(connection: AsyncConnection) -> Any:
    """asyncpg's connection under ``connection``, its transaction begun (SQLAlchemy begins lazily)."""
    driver = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():  # type: ignore[union-attr]
        await connection.execute(text("SELECT 1"))
    return driver


class Outgoing(NamedTuple):
    """A message as the relay sends it: its ``message-id`` header added, values as bytes."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def claimed_messages(rows: Sequence[Any], service: str) -> list[Outgoing]:
    """The messages of claimed rows (id, topic, key, payload, headers, messages), in order."""
    out = []
    for rid, topic, key, payload, raw, count in rows:
        if count == 1:
            pairs = [(k, v.encode()) for k, v in orjson.loads(raw)] if raw else []
            message_id = (MESSAGE_ID_HEADER, f"{service}:{rid}".encode())
            out.append(Outgoing(topic, key, bytes(payload), [*pairs, message_id]))
            continue
        prefix = f"{service}:{rid}."
        for n, (k, v, pairs) in enumerate(unpack(bytes(payload), raw)):
            out.append(Outgoing(topic, k, v, [*pairs, (MESSAGE_ID_HEADER, (prefix + str(n)).encode())]))
    return out


class OutboxRelay:
    """Publishes a service's outbox rows; :meth:`wake` it after each commit that added rows."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        table: Table,
        service: str,
        *,
        batch_size: int = 5000,
        idle_poll_s: float = 1.0,
    ) -> None:
        self.engine, self.producer, self.table, self.service = engine, producer, table, service
        self.batch_size, self.idle_poll_s = batch_size, idle_poll_s
        self.is_postgres = engine.dialect.name == "postgresql"
        self._lock_key = zlib.crc32(table.name.encode())
        # The first rows in id order holding up to ``budget`` messages (always the first row).
        claim = (
            f"WITH ahead AS (SELECT id, sum(messages) OVER (ORDER BY id) - messages AS before "
            f"FROM {table.name} ORDER BY id LIMIT :budget) "
            f"SELECT id, topic, key, payload, headers, messages FROM {table.name} "
            "WHERE id IN (SELECT id FROM ahead WHERE before < :budget) ORDER BY id"
        )
        self._claim = text(claim)
        self._claim_postgres = claim.replace(":budget", "$1") + " FOR UPDATE SKIP LOCKED"
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._backlog_checked = 0.0
        self._partitions: dict[str, list[int]] = {}
        self._by_key: dict[tuple[str, bytes], int] = {}
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.service}-outbox-relay")

    async def stop(self, grace_s: float) -> None:
        """Publish what is ready within ``grace_s``, then stop (the rest waits for the next start)."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                count = await self.publish_once()
                failures = 0
            except Exception as exc:  # broker or database down: keep the rows, retry later
                failures += 1
                log.warning("outbox publish failed", table=self.table.name, error=repr(exc), attempt=failures)
                await asyncio.sleep(min(30.0, float(2 ** min(failures - 1, 5))))
                continue
            if count:
                continue  # more may be waiting
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_poll_s)

    async def publish_once(self) -> int:
        """Publish and delete the next rows in id order; the number of messages published
        (0: none or not leader)."""
        async with self.engine.begin() as connection:
            if self.is_postgres:
                driver = await _driver_in_transaction(connection)
                if not await driver.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key):
                    return 0
                rows = await driver.fetch(self._claim_postgres, self.batch_size)
            else:
                rows = list(await connection.execute(self._claim, {"budget": self.batch_size}))
            messages = claimed_messages(rows, self.service)
            if rows:
                await self._publish(messages)
                await self._delete(connection, [r[0] for r in rows])
            await self._observe_backlog(connection, len(messages))
        self.published += len(messages)
        return len(messages)

    async def _delete(self, connection: AsyncConnection, ids: list[int]) -> None:
        """One array parameter on PostgreSQL: SQLAlchemy would render and bind an ``IN`` list of thousands."""
        if self.is_postgres:
            driver = await _driver_in_transaction(connection)
            await driver.execute(f"DELETE FROM {self.table.name} WHERE id = ANY($1::bigint[])", ids)
            return
        await connection.execute(delete(self.table).where(self.table.c.id.in_(ids)))

    async def _publish(self, messages: Sequence[Outgoing]) -> None:
        """Messages grouped per partition, in id order, as whole batches (``send`` costs ~20 us a message).

        Partitions are those of the default partitioner (murmur2 of the key, as the Java
        client), so a key always lands where any other producer would put it.
        """
        groups: dict[tuple[str, int], list[Outgoing]] = {}
        for m in messages:
            groups.setdefault((m.topic, await self._partition(m.topic, m.key)), []).append(m)
        futures = []
        for (topic, partition), members in groups.items():
            batch = self.producer.create_batch()
            for m in members:
                if batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers) is None:
                    futures.append(await self.producer.send_batch(batch, topic, partition=partition))
                    batch = self.producer.create_batch()
                    batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers)
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    async def _partition(self, topic: str, key: bytes | None) -> int:
        known = self._partitions.get(topic)
        if known is None:
            known = self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
        if key is None:
            return random.choice(known)
        cached = self._by_key.get((topic, key))
        if cached is None:
            cached = self._by_key[(topic, key)] = int(DefaultPartitioner()(key, known, known))
            if len(self._by_key) > 100_000:
                self._by_key.clear()
        return cached

    async def _observe_backlog(self, connection: AsyncConnection, claimed: int) -> None:
        """Set the backlog gauge (messages): zero when the claim took every row (fewer
        messages than it could), counted at most once a second otherwise."""
        if claimed < self.batch_size:
            OUTBOX_BACKLOG.labels(self.service).set(0)
            return
        now = time.monotonic()
        if now - self._backlog_checked >= 1.0:
            self._backlog_checked = now
            # the rows this transaction deleted are no longer counted
            waiting = select(func.coalesce(func.sum(self.table.c.messages), 0))
            OUTBOX_BACKLOG.labels(self.service).set(int(await connection.scalar(waiting) or 0))
