"""The shared batch plumbing as quota uses it: retries, readiness, drain, giving a batch up on revoke."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from services.quota.tables import consumer_offsets
from shared.consumer import Batch, BatchConsumer, ConsumerSpec
from shared.db import make_engine, migrate
from shared.settings import Settings
from tests.conftest import fresh_database_url
from tests.integration.quota.recording import FakeRecord, RecordingConsumer

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    engine = make_engine(await fresh_database_url(tmp_path))
    await migrate(engine, "quota")
    yield engine
    await engine.dispose()


def _plumbing(engine: Any, handler: Any, grace: float = 5.0) -> BatchConsumer:
    settings = Settings(service="quota", shutdown_grace_s=grace)
    return BatchConsumer(ConsumerSpec("quota", "g-test", ("t",)), handler, engine, settings)


async def test_a_failing_database_is_retried_at_most_once_a_second_and_reported_unready(engine: Any) -> None:
    attempts: list[float] = []
    readiness: list[bool] = []

    async def handler(batch: Batch) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise OperationalError("INSERT", {}, ConnectionError("database is down"))

    plumbing = _plumbing(engine, handler)

    in_flight: list[tuple[int, int]] = []

    async def probe() -> None:
        while len(attempts) < 3:
            in_flight.append((plumbing.begun, plumbing.ended))
            try:
                await plumbing.check()
                readiness.append(True)
            except RuntimeError:
                readiness.append(False)
            await asyncio.sleep(0.05)

    kafka = RecordingConsumer()
    await asyncio.gather(plumbing.consume(kafka, [FakeRecord(0, 0), FakeRecord(0, 1)]), probe())  # type: ignore[arg-type]
    assert len(attempts) == 3
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(attempts))
    assert False in readiness
    assert (1, 0) in in_flight  # taken up, not done with while it retried: the feed gives way
    assert (plumbing.begun, plumbing.ended, plumbing.batches) == (1, 1, 1)
    await plumbing.check()  # ready again once a batch committed
    assert [list(c.values()) for c in kafka.commits] == [[2]]
    async with engine.connect() as c:
        assert (await c.execute(select(consumer_offsets.c.next_offset))).scalars().all() == [2]


async def test_a_batch_stuck_retrying_is_given_up_when_its_partitions_are_revoked(engine: Any) -> None:
    async def handler(batch: Batch) -> None:
        raise OperationalError("INSERT", {}, ConnectionError("database is down"))

    plumbing, kafka = _plumbing(engine, handler, grace=0.5), RecordingConsumer()
    consuming = asyncio.create_task(plumbing.consume(kafka, [FakeRecord(3, 40), FakeRecord(3, 41)]))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    await plumbing.quiesce(set())
    await asyncio.wait_for(consuming, 5)
    assert kafka.commits == []
    assert [offset for _, offset in kafka.seeks] == [40]  # fetched again from its first record
    assert (plumbing.begun, plumbing.ended, plumbing.batches) == (1, 1, 0)  # done with, not committed


async def test_after_drain_no_batch_is_processed(engine: Any) -> None:
    seen: list[int] = []

    async def handler(batch: Batch) -> None:
        seen.extend(r.offset for r in batch.records)

    plumbing, kafka = _plumbing(engine, handler), RecordingConsumer()
    await plumbing.consume(kafka, [FakeRecord(0, 0)])  # type: ignore[arg-type]
    await plumbing.drain()
    await plumbing.consume(kafka, [FakeRecord(0, 1)])  # type: ignore[arg-type]
    assert seen == [0]
    assert [offset for _, offset in kafka.seeks] == [1]
