"""One replica of the group builds the rollup documents (``feed.Leadership``), on a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.domain import BranchRegistration
from services.reporting.feed import LEADER_LOCK, Leadership, RollupPublisher, marks_waiting
from services.reporting.fold import Change, Folder, Registration
from services.reporting.placing import Placer
from services.reporting.series import series_of
from services.reporting.tables import outbox
from shared.db import make_engine, migrate
from shared.orgtree import load_org_trees
from tests.conftest import TEST_DATABASE_URL, eventually

pytestmark = pytest.mark.integration
postgres_only = pytest.mark.skipif(TEST_DATABASE_URL is None, reason="SQLite has one writer: no group")


async def _leader_pid(engine: AsyncEngine) -> int | None:
    async with engine.connect() as connection:
        return await connection.scalar(
            text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = :k AND granted"),
            {"k": LEADER_LOCK},
        )


@postgres_only
async def test_one_replica_leads_and_hands_over_when_it_stops(database_url: str) -> None:
    first, second = make_engine(database_url), make_engine(database_url)  # two replicas
    a, b = Leadership(first), Leadership(second)
    try:
        assert await a.held()
        assert REGISTRY.get_sample_value("ketnap_rollups_feed_leader") == 1
        assert not await b.held()
        assert await a.held()  # still: its session is alive
        await a.release()
        assert await b.held()
        assert not await a.held()
        assert await _leader_pid(first) is not None
    finally:
        await a.release()
        await b.release()
        await first.dispose()
        await second.dispose()
    assert REGISTRY.get_sample_value("ketnap_rollups_feed_leader") == 0


@postgres_only
async def test_a_leader_whose_session_died_is_replaced(database_url: str) -> None:
    first, second = make_engine(database_url), make_engine(database_url)
    a, b = Leadership(first), Leadership(second)
    try:
        assert await a.held()
        pid = await _leader_pid(first)
        async with second.connect() as admin:
            assert await admin.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        assert await eventually(b.held, within=10)
        assert not await a.held()  # notices its session is gone; the other holds the lock now
    finally:
        await a.release()
        await b.release()
        await first.dispose()
        await second.dispose()


async def test_sqlite_has_one_writer_so_every_replica_may_build(database_url: str) -> None:
    if TEST_DATABASE_URL is not None:
        pytest.skip("SQLite only")
    engine = make_engine(database_url)
    try:
        leadership = Leadership(engine)
        assert await leadership.held()
        assert await Leadership(engine).held()
        assert REGISTRY.get_sample_value("ketnap_rollups_feed_leader") == 1  # it builds: it says so
        await leadership.release()
        assert REGISTRY.get_sample_value("ketnap_rollups_feed_leader") == 0  # stopped: no longer
    finally:
        await engine.dispose()


@postgres_only
async def test_only_the_leading_publisher_builds_documents(database_url: str) -> None:
    """Two replicas' publishers over many rounds of folds: one of them sends every document."""
    engines = [make_engine(database_url), make_engine(database_url)]
    await migrate(engines[0], "reporting")
    folder = Folder(Placer(load_org_trees()))
    branch = BranchRegistration("B-C06901-41", "C06901", None, "Chi bộ 41", "residential")
    async with engines[0].begin() as connection:
        await folder.register(connection, [Registration(branch, datetime(2024, 1, 1, tzinfo=UTC), "reg-1")])
    publishers = [
        RollupPublisher(engine, Placer(load_org_trees()), outbox, coalesce_s=0.05) for engine in engines
    ]
    try:
        for publisher in publishers:
            publisher.start()
        admitted = series_of("admitted", "all")
        for n in range(1, 13):  # a fold every three coalescing periods: many rounds
            day = date(2024, n, 1).toordinal()
            async with engines[0].begin() as connection:
                await folder.fold(connection, [Change("B-C06901-41", day, admitted, 1, 1)])
            await asyncio.sleep(0.15)

        async def drained() -> bool:
            async with engines[0].connect() as connection:
                return not await marks_waiting(connection)

        await eventually(drained, within=30)
        published = sorted(p.published for p in publishers)
        assert published[0] == 0
        assert published[1] >= 12 * 4  # each month: the commune, district, province and VN
    finally:
        for publisher in publishers:
            await publisher.stop()
        for engine in engines:
            await engine.dispose()
