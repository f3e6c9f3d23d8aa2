"""Exactly-once effect over an at-least-once broker: one batch, one transaction, then the offset.

A service subscribes a batch handler ``async def handle(batch: Batch) -> None``; the
:class:`BatchConsumer` runs it on FastStream's Kafka batch subscriber. For each batch:

1. in ONE database transaction: lock the batch's partitions' rows in
   ``<service>_consumer_offsets`` (the fence: one writer per partition, even while
   a rebalance hands a partition to another replica), drop records below the stored
   position (redeliveries, counted in ``ketnap_redeliveries_total``), run the handler
   on the rest (it writes processed ids, state, tallies and outbox rows on
   ``batch.connection``), store the new positions; commit;
2. then commit the Kafka offsets. Dying between 1 and 2 only re-delivers records the
   fence drops: a redelivered record changes nothing.

Ack policy: ``AckPolicy.MANUAL``. FastStream 0.7's ``ACK`` also acks when the handler
raises (the batch would be lost) and ``NACK_ON_ERROR`` commits every consumed position
of the consumer after the handler, outside the fence; with ``MANUAL`` this module
commits exactly the batch's offsets after the database commit and, when a batch is
given up (shutdown, partitions revoked), seeks back so nothing is skipped.

Failures: any database error is retried with backoff (1 s, 2 s, ... 30 s: never more
than one retry a second), forever: nothing is dead-lettered because the database is
down, and :meth:`BatchConsumer.check` (a readiness check) fails meanwhile. Poison
records are the handler's business (reject them through the outbox), never an
exception. Rebalance: before partitions are revoked the batch in flight finishes (or,
when it is stuck retrying, is dropped and re-delivered later). Shutdown: :meth:`drain`
waits for the batch in flight, at most ``settings.shutdown_grace_s``.

Batch order: each batch is filled oldest partition first, 500 records at a time
(:mod:`shared.fetch_order`), not one partition's whole backlog as aiokafka drains it:
a batch then covers a narrow span of time, and every aggregate row it touches is
written once for more of its records. Within a partition the log's order is kept.

Group timing: ``KETNAP_KAFKA_SESSION_TIMEOUT_MS`` (default 10,000; heartbeats every fifth
of it): how soon a dead replica's partitions move. The embedded broker (Tansu) also
waits about that long before it completes a rejoin, so tests and ``ketnap up`` use a
short one.

Test-only fault hook: ``KETNAP_FAULT_KILL_AFTER_COMMIT_PROB`` (0..1) makes the process
``os._exit`` between the database commit and the offset commit with that probability.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import attrgetter
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.fetch_order import OldestFirst, seek_back
from shared.logging import get_logger
from shared.metrics import (
    BATCH_SECONDS,
    CONSUMER_LAG,
    FRESHNESS_SECONDS,
    REDELIVERIES,
    observe_all,
)
from shared.settings import Settings

log = get_logger(__name__)

FAULT_KILL_ENV = "KETNAP_FAULT_KILL_AFTER_COMMIT_PROB"
SESSION_TIMEOUT_ENV = "KETNAP_KAFKA_SESSION_TIMEOUT_MS"  # Settings.kafka_session_timeout_ms
FAULT_EXIT_CODE = 86
RECORDED_HEADER = "recordedtime"
MAX_BACKOFF_S = 30.0

Partition = tuple[str, int]


class Record(Protocol):
    """What a handler sees of a Kafka record (aiokafka's ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class Batch:
    """New records of one batch (redeliveries already dropped), inside the open transaction."""

    connection: AsyncConnection
    records: Sequence[Record]
    now: datetime
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    prepared: Any = None
    """What ``prepare`` made of these records before the transaction (None: nothing, or a retry)."""

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction committed (metrics, waking the relay)."""
        self.callbacks.append(callback)


BatchHandler = Callable[[Batch], Awaitable[None]]
BatchPreparer = Callable[[Sequence[Record]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    service: str
    group_id: str
    topics: tuple[str, ...]


def offsets_table(metadata: MetaData, service: str) -> Table:
    """``<service>_consumer_offsets``: the next offset to process per (group, topic, partition)."""
    return Table(
        f"{service}_consumer_offsets",
        metadata,
        Column("group_id", Text, primary_key=True),
        Column("topic", Text, primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
    )


def make_broker(settings: Settings) -> KafkaBroker:
    """A FastStream Kafka broker for consumers, with the TLS/SASL settings of ``shared.kafka``."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        security=_security(settings),
        client_id=settings.kafka_client_id or settings.service,
        logger=logging.getLogger("ketnap.faststream"),  # through the service's JSON logging
        log_level=logging.DEBUG,  # FastStream's per-message access log; batches are logged here
        graceful_timeout=settings.shutdown_grace_s,
    )


def group_timing(settings: Settings) -> dict[str, int]:
    """Session, heartbeat and rebalance timeouts of the consumer group (ms)."""
    session = settings.kafka_session_timeout_ms
    return {
        "session_timeout_ms": session,
        "heartbeat_interval_ms": max(100, session // 5),
        "rebalance_timeout_ms": session,
    }


def _security(settings: Settings) -> BaseSecurity | None:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    use_ssl = protocol.endswith("SSL")
    context = (
        ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if use_ssl
        else None
    )
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    user, password = settings.kafka_sasl_username or "", settings.sasl_password() or ""
    mechanism = settings.kafka_sasl_mechanism or "SCRAM-SHA-512"
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return kinds[mechanism](user, password, ssl_context=context, use_ssl=use_ssl)


Spans = dict[Partition, tuple[int, int]]
_PARTITION = attrgetter("topic", "partition")


def _first_and_last(records: Iterable[Record]) -> Spans:
    """The first and last offset of each partition in a batch. A fetch gives each partition's
    records as one run in offset order, so this walks runs, not records one by one (min and
    max all the same: the answer does not depend on that order)."""
    spans: Spans = {}
    for partition, run in groupby(records, _PARTITION):
        offsets = [r.offset for r in run]
        first, last = min(offsets), max(offsets)
        held = spans.get(partition)
        spans[partition] = (first, last) if held is None else (min(held[0], first), max(held[1], last))
    return spans


def recorded_at(record: Record, parsed: dict[bytes, float] | None = None) -> float:
    """When the record was recorded upstream (epoch s): its ``recordedtime`` header, else its
    timestamp. ``parsed``: header values already read (a batch's records often share one)."""
    for name, value in record.headers or ():
        if name == RECORDED_HEADER:
            if parsed is not None and (known := parsed.get(value)) is not None:
                return known
            with contextlib.suppress(ValueError):
                at = datetime.fromisoformat(value.decode()).timestamp()
                if parsed is not None:
                    parsed[value] = at
                return at
    return float(record.timestamp) / 1000.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.quiesce(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.owner.partitions = len(assigned)
        log.info("partitions assigned", group=self.owner.spec.group_id, partitions=len(assigned))


class BatchConsumer:
    """One consumer group's batch loop: handler and position in one transaction, offset after."""

    def __init__(
        self,
        spec: ConsumerSpec,
        handler: BatchHandler,
        engine: AsyncEngine,
        settings: Settings,
        *,
        after_commit: Sequence[Callable[[], None]] = (),
        prepare: BatchPreparer | None = None,
    ) -> None:
        self.spec, self.handler, self.engine, self.settings = spec, handler, engine, settings
        self.table = offsets_table(MetaData(), spec.service)
        self.after_commit = tuple(after_commit)
        self.is_postgres = engine.dialect.name == "postgresql"
        self.prepare = prepare
        self.overlaps = prepare is not None and self.is_postgres
        self._in_flight: asyncio.Task[bool] | None = None
        self._busy = asyncio.Lock()
        self._draining = False
        self._abandon = asyncio.Event()
        self._failing: str | None = None
        self._kill_probability = float(os.environ.get(FAULT_KILL_ENV) or 0.0)
        self.batches = self.records = 0  # committed
        self.begun = self.ended = 0  # batches taken up and done with (committed or given up)
        self.partitions = 0  # held since the last rebalance
        self.fetch_order: OldestFirst | None = None  # set on the first batch
        self.first_batch_at: float | None = None
        self.freshness_samples: deque[float] = deque(maxlen=100_000)  # the latest, for benchmarks

    def subscribe(self, broker: KafkaBroker) -> None:
        """Register the batch subscriber on ``broker`` (started with the broker)."""
        timing = group_timing(self.settings)
        subscriber = broker.subscriber(
            *self.spec.topics,
            batch=True,
            max_records=self.settings.consumer_batch,
            batch_timeout_ms=100,
            fetch_max_wait_ms=50,
            group_id=self.spec.group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            listener=_Rebalance(self),
            decoder=_the_records,
            session_timeout_ms=timing["session_timeout_ms"],
            heartbeat_interval_ms=timing["heartbeat_interval_ms"],
            rebalance_timeout_ms=timing["rebalance_timeout_ms"],
        )

        async def on_batch(batch: Any) -> None:  # Any: FastStream validates what is annotated
            consumer, records = batch
            self.fetch_order = OldestFirst.install(consumer)  # the next batches: oldest first
            await self.consume(consumer, records)

        subscriber(on_batch)

    async def check(self) -> None:
        """Readiness: fails while batches cannot be committed (e.g. the database is down)."""
        if self._failing:
            raise RuntimeError(f"{self.spec.group_id}: {self._failing}")

    async def drain(self) -> None:
        """Take no new batch; wait for the one in flight at most ``shutdown_grace_s``."""
        self._draining = True
        if self._failing:
            self._abandon.set()
        if not await self._settled():
            log.warning("batch still in flight at shutdown", group=self.spec.group_id)
            self._abandon.set()

    async def quiesce(self, revoked: set[TopicPartition]) -> None:
        """Before partitions move: let the batch in flight finish (drop it if it is stuck retrying)."""
        if self._failing:
            self._abandon.set()
        if not await self._settled():
            self._abandon.set()
        for tp in revoked:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.spec.service, tp.topic, str(tp.partition))

    async def consume(self, consumer: AIOKafkaConsumer, records: Sequence[Record]) -> None:
        """Process one batch end to end (called by the subscriber; public for tests).

        With ``prepare`` on PostgreSQL, pipelined: the batch is prepared while the
        previous one's transaction runs, then its own transaction is started and this
        returns before it ends (:meth:`settle` waits for it); transactions and offset
        commits keep the order of the batches, each starting after the previous ended.
        SQLite has one writer at a time (the relay's deletes among them): there a batch
        is prepared and committed in turn.
        """
        if not records:
            return
        if self._draining:
            _rewind(consumer, records)
            await asyncio.sleep(0.2)  # shutting down: don't spin on the same records
            return
        prepared = await self._prepared(records)
        if not self.overlaps:
            await self._process(consumer, records, prepared)
            return
        previous = self._in_flight
        if previous is not None and not await asyncio.shield(previous):
            return  # the previous batch was given up and rewound: these records come again
        if self._draining:
            _rewind(consumer, records)
            return
        self._in_flight = asyncio.create_task(self._process(consumer, records, prepared))

    async def settle(self) -> None:
        """Wait for the batch in flight (pipelined consumption) to be committed or given up."""
        if self._in_flight is not None:
            await asyncio.shield(self._in_flight)

    async def _settled(self) -> bool:
        """Whether the batch in flight ended within ``shutdown_grace_s``."""
        grace = self.settings.shutdown_grace_s
        try:
            if self._in_flight is not None:
                await asyncio.wait_for(asyncio.shield(self._in_flight), grace)
            await asyncio.wait_for(self._busy.acquire(), grace)
        except TimeoutError:
            return False
        self._busy.release()
        return True

    async def _prepared(self, records: Sequence[Record]) -> Any:
        try:
            return await self.prepare(records) if self.prepare is not None else None
        except Exception as exc:  # only a head start: the transaction decides without it
            log.warning("batch not prepared", group=self.spec.group_id, error=repr(exc))
            return None

    async def _process(self, consumer: AIOKafkaConsumer, records: Sequence[Record], prepared: Any) -> bool:
        """One batch's transaction (with retries) and offset commit; False when given up (rewound)."""
        async with self._busy:
            self.begun += 1
            try:
                return await self._commit(consumer, records, prepared)
            except Exception:  # a defect here must not skip records: fetch them again (the fence dedups)
                log.exception("batch failed", group=self.spec.group_id)
                _rewind(consumer, records)
                return False
            finally:
                self.ended += 1

    async def _commit(self, consumer: AIOKafkaConsumer, records: Sequence[Record], prepared: Any) -> bool:
        self._abandon.clear()
        started = time.perf_counter()
        self.first_batch_at = self.first_batch_at or started
        spans = _first_and_last(records)
        committed = await self._commit_with_retries(records, spans, prepared)
        if committed is None:
            _rewind(consumer, records)
            return False
        if self._kill_probability and random.random() < self._kill_probability:
            os._exit(FAULT_EXIT_CODE)  # test hook: die between the database and the offset commit
        await self._commit_offsets(consumer, spans)
        self._observe(consumer, records, spans, committed, started)
        return True

    async def _commit_with_retries(
        self, records: Sequence[Record], spans: Spans, prepared: Any = None
    ) -> Batch | None:
        attempt = 0
        while True:
            try:
                batch = await self._transaction(records, spans, prepared if attempt == 0 else None)
            except Exception as exc:  # database down, lock conflict, ...: retry; never skip records
                attempt += 1
                self._failing = f"{type(exc).__name__}: {exc}"[:300]
                log.warning(
                    "batch transaction failed", group=self.spec.group_id, attempt=attempt, error=repr(exc)
                )
                if self._draining or self._abandon.is_set():
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._abandon.wait(), min(MAX_BACKOFF_S, 2.0 ** (attempt - 1)))
                if self._abandon.is_set():
                    return None
                continue
            self._failing = None
            return batch

    async def _transaction(self, records: Sequence[Record], spans: Spans, prepared: Any = None) -> Batch:
        async with self.engine.begin() as connection:
            positions = await self._lock_positions(connection, sorted(spans))
            fresh = [r for r in records if r.offset >= positions[(r.topic, r.partition)]]
            batch = Batch(connection, fresh, datetime.now(UTC), prepared=prepared)
            if fresh:
                await self.handler(batch)
            moved = {tp: last + 1 for tp, (_, last) in spans.items() if last + 1 > positions[tp]}
            await self._store_positions(connection, moved)
        skipped = len(records) - len(fresh)
        if skipped:
            REDELIVERIES.labels(self.spec.service).inc(skipped)
            log.info("redelivered records skipped", group=self.spec.group_id, count=skipped)
        return batch

    def _insert(self) -> Any:
        return (postgresql.insert if self.is_postgres else sqlite.insert)(self.table)

    async def _lock_positions(
        self, connection: AsyncConnection, partitions: list[Partition]
    ) -> dict[Partition, int]:
        rows = [
            {"group_id": self.spec.group_id, "topic": t, "partition": p, "next_offset": 0}
            for t, p in partitions
        ]
        await connection.execute(self._insert().on_conflict_do_nothing(), rows)
        c = self.table.c
        query = (
            select(c.topic, c.partition, c.next_offset)
            .where(c.group_id == self.spec.group_id, tuple_(c.topic, c.partition).in_(partitions))
            .order_by(c.topic, c.partition)
            .with_for_update()
        )
        return {(r.topic, r.partition): r.next_offset for r in await connection.execute(query)}

    async def _store_positions(self, connection: AsyncConnection, moved: dict[Partition, int]) -> None:
        if not moved:
            return
        rows = [
            {"group_id": self.spec.group_id, "topic": t, "partition": p, "next_offset": n}
            for (t, p), n in moved.items()
        ]
        statement = self._insert()
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["group_id", "topic", "partition"],
                set_={"next_offset": statement.excluded.next_offset},
            ),
            rows,
        )

    async def _commit_offsets(self, consumer: AIOKafkaConsumer, spans: Spans) -> None:
        offsets = {TopicPartition(t, p): last + 1 for (t, p), (_, last) in spans.items()}
        try:
            await consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:  # rebalanced meanwhile: the fence absorbs the redelivery
            log.warning("offset commit failed", group=self.spec.group_id, error=repr(exc))

    def _observe(
        self,
        consumer: AIOKafkaConsumer,
        records: Sequence[Record],
        spans: Spans,
        batch: Batch,
        started: float,
    ) -> None:
        self.batches += 1
        self.records += len(records)
        for callback in (*batch.callbacks, *self.after_commit):
            callback()
        now = time.time()
        service = self.spec.service
        BATCH_SECONDS.labels(service).observe(time.perf_counter() - started)
        parsed: dict[bytes, float] = {}
        ages = [max(0.0, now - recorded_at(record, parsed)) for record in batch.records]
        observe_all(FRESHNESS_SECONDS.labels(service), ages)
        self.freshness_samples.extend(ages)
        for (topic, partition), (_, last) in spans.items():
            highwater = consumer.highwater(TopicPartition(topic, partition))
            if highwater is not None:
                CONSUMER_LAG.labels(service, topic, str(partition)).set(max(0, highwater - last - 1))


async def _the_records(message: Any) -> tuple[AIOKafkaConsumer, Sequence[Record]]:
    """FastStream decoder: the batch's consumer and records, undecoded (decoded once, later).

    Not the message itself: FastStream keeps the decoded value in a cache on the message,
    so returning the message made each batch message a reference cycle, its records
    freed only by the cyclic collector. With that collector run once a minute a national
    year held a minute of batches: reporting's peak RSS 943 MB against 470 (2026-12-06).
    """
    return message.consumer, message.raw_message


def _rewind(consumer: AIOKafkaConsumer, records: Sequence[Record]) -> None:
    """Seek back to the batch's first offsets so a batch given up is fetched again."""
    firsts = {TopicPartition(t, p): first for (t, p), (first, _) in _first_and_last(records).items()}
    seek_back(consumer, firsts)
