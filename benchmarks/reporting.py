"""Reporting: fold throughput and rollup query latency with a national year loaded.

A synthetic national year, deterministic for its seed: 100,000 branches over the
10,035 legacy communes (each with its official 2025 commune), 2,000,000 candidate
events spread over 2024 in time order (``--quick``: 20,000 branches and 60,000
events over 55 days, the same events per branch and day; registering 100,000 branches
took 14 s, more than the quick fold), each giving one tally change per key it touches (``all``, half
of them ``female``, some a profile category), as the quota service emits them.

- ``reporting_fold_per_s``: tally changes folded per second by the service's
  batch handler path (`Folder.fold`, batches of ``reporting_batch``), on the
  benchmark database (PostgreSQL when one runs on 127.0.0.1:5432, else SQLite);
  the registrations are loaded first and not counted.
- ``reporting_refold_per_s``: the year's last ``REFOLDED_BATCHES`` batches folded again,
  as after a crash or a rebalance (every change a repeat, nothing written but the
  versions read): a batch of stored keys once cost ~3 s (a planner's nested loop).
- ``reporting_fold_2_replicas_per_s``: the same year folded by two replicas at once, each
  a process of its own with its own connection, on a second database: each folds the
  changes of the partitions it would be given (the quota publishes tally changes keyed
  by branch, murmur2 as the Java client; partition ``p`` of 12 to replica ``p % 2`` as
  aiokafka's round-robin assignor gives them), in the same batches; changes over the
  seconds from both starting to the last one finishing. The replicas share the hot
  rows (``VN``, provinces), which the fold's lock order serialises. On PostgreSQL only.
- ``reporting_replay_2_replicas_per_s``: the whole service, not only its fold: the same
  year's changes put on ``ketnap.tally-changes`` as the quota publishes them (JSON, keyed
  by branch; the branches registered in the database first), then two reporting
  services started, each a process of its own in one consumer group (decoding, offsets,
  outbox relay and rollup feed included). Timed from both holding partitions to the last
  commit, counting the changes committed meanwhile (``_counted``: the first replica's
  head start before the group settled is left out). On PostgreSQL only. The autovacuum
  stand-in (``benchmarks/vacuum.py``) analyses and vacuums the tables meanwhile, as
  autovacuum would in production (``_stand_in_analyses``, ``_stand_in_vacuums``: how
  often; both 0 when the server's own autovacuum is on).
  ``_feed_behind_s``: from that last commit until the rollups feed has built every
  document the changes touched (no dirty mark left): the feed's lag, outside the figure.
- ``query_<unit>_<period>_p50_ms`` / ``_p99_ms``: one rollup answer
  (`ReportingReads.rollup`: validation, one snapshot, every query, the answer dict)
  for ``VN``, a province (``P01`` Hà Nội, the largest, in both trees) and a commune,
  for the year and for a date range with partial months at both ends;
  ``query_p99_ms`` is the worst of those p99s. ``query_<unit>_<period>_first_ms``
  is the first answer, before anything is cached: ``branches_with_events`` is
  counted by a scan and cached until an activity row of the period's years changes,
  so while changes keep flowing every answer costs about that much.
  The database is ``ANALYZE``d after the load (autovacuum does it in production).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Generator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.common import Replicas, broker, fresh_database, percentile
from benchmarks.vacuum import AutovacuumStandIn
from services.intake.partition import murmur2, partition_of
from services.quota.wire import tally_change_from
from services.reporting.domain import BranchRegistration
from services.reporting.feed import marks_waiting
from services.reporting.fold import Change, Folder, Registration
from services.reporting.placing import Placer
from services.reporting.queries import RollupReader
from services.reporting.reads import ReportingReads
from services.reporting.series import NAMES, SERIES
from shared.collector import PeriodicCollector
from shared.db import is_sqlite, make_engine, migrate
from shared.orgtree import load_org_trees
from shared.settings import Settings
from shared.topics import REFERENCE_EVENTS, TALLY_CHANGES, partitions_of

BRANCHES = 100_000
QUICK_SIZE = (20_000, 60_000, 55)  # branches, events, days
FULL_SIZE = (BRANCHES, 2_000_000, 366)
REPLICAS = 2
REFOLDED_BATCHES = 20
TALLY_PARTITIONS = list(range(partitions_of(TALLY_CHANGES)))
METRICS = ("sourced", "class_completed", "dossier_verified", "admitted", "confirmed")
CATEGORIES = ("ethnic_minority", "youth_union", "student", "religious", "private_sector")
QUERIES = {
    "vn": ("VN", None),
    "province": ("P01", None),
    "province2025": ("P01", "2025"),
    "commune": ("C06901", None),
}
PERIODS = {"year": "2024", "range": "2024-01-15..2024-05-20"}


def registrations(count: int = BRANCHES) -> list[BranchRegistration]:
    trees = load_org_trees()
    communes = [c.id for c in trees.legacy.units("commune")]
    found = []
    for i in range(count):
        commune = communes[i % len(communes)]
        branch_id = f"B-{commune}-{i // len(communes):02d}"
        parent_2025 = trees.to_2025(commune)
        found.append(BranchRegistration(branch_id, commune, parent_2025, f"Chi bộ {i}", "residential"))
    return found


def changes(branches: list[BranchRegistration], events: int, days: int, batch: int) -> Iterator[list[Change]]:
    """Batches of tally changes in time order, values and versions as the quota service sets them."""
    rng = random.Random(20241)
    held: dict[tuple[str, int, int], tuple[int, int]] = {}
    start = date(2024, 1, 1).toordinal()
    pending: list[Change] = []
    for ordinal in sorted(start + rng.randrange(days) for _ in range(events)):
        branch = branches[rng.randrange(len(branches))].branch_id
        metric = METRICS[min(4, int(rng.expovariate(0.8)))]
        categories = ["all", *(["female"] if rng.random() < 0.5 else [])]
        if rng.random() < 0.3:
            categories.append(rng.choice(CATEGORIES))
        for category in categories:
            key = (branch, SERIES[(metric, category)], ordinal)
            value, version = held.get(key, (0, 0))
            held[key] = (value + 1, version + 1)
            pending.append(Change(branch, ordinal, key[1], value + 1, version + 1))
        if len(pending) >= batch:
            yield pending
            pending = []
    if pending:
        yield pending


async def register(
    engine: AsyncEngine, folder: Folder, branches: list[BranchRegistration], batch: int
) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    for offset in range(0, len(branches), batch):
        async with engine.begin() as connection:
            group = branches[offset : offset + batch]
            await folder.register(connection, [Registration(b, at, f"reg-{b.branch_id}") for b in group])


async def load(
    engine: AsyncEngine, folder: Folder, size: tuple[int, int, int], batch: int
) -> dict[str, float]:
    """Register ``size``'s branches, then fold its events over its days; the fold is timed."""
    count, events, days = size
    branches = registrations(count)
    await register(engine, folder, branches, batch)
    folded, spent = 0, 0.0
    last: deque[list[Change]] = deque(maxlen=REFOLDED_BATCHES)
    for chunk in changes(branches, events, days, batch):
        spent += await _timed_fold(engine, folder, chunk)
        folded += len(chunk)
        last.append(chunk)
    refolded = sum(len(chunk) for chunk in last)
    again = sum([await _timed_fold(engine, folder, chunk) for chunk in last])
    return {
        "reporting_fold_per_s": folded / spent,
        "reporting_changes_loaded": float(folded),
        "reporting_refold_per_s": refolded / again,
    }


async def _timed_fold(engine: AsyncEngine, folder: Folder, chunk: list[Change]) -> float:
    started = time.perf_counter()
    async with engine.begin() as connection:
        await folder.fold(connection, chunk)
    return time.perf_counter() - started


def replica_of(branch_id: str, replicas: int) -> int:
    """The replica folding ``branch_id``'s changes: its partition's, ``p % replicas``."""
    return partition_of(murmur2(branch_id.encode()), TALLY_PARTITIONS) % replicas


async def _registered(url: str, branches: int, batch: int) -> None:
    """A migrated database at ``url`` with ``branches`` registered (not timed)."""
    engine = make_engine(url)
    try:
        await migrate(engine, "reporting")
        await register(engine, Folder(Placer(load_org_trees())), registrations(branches), batch)
    finally:
        await engine.dispose()


def fold_replicas(url: str, size: tuple[int, int, int], replicas: int, batch: int) -> dict[str, float]:
    """``size``'s year folded by ``replicas`` processes at once into a new database at ``url``."""
    asyncio.run(_registered(url, size[0], batch))
    spawn = multiprocessing.get_context("spawn")
    ready, folded = spawn.Barrier(replicas + 1), spawn.Array("q", replicas)
    children = [
        spawn.Process(target=_fold_replica, args=(url, size, batch, i, replicas, ready, folded))
        for i in range(replicas)
    ]
    for child in children:
        child.start()
    ready.wait(timeout=600)  # every replica has its changes in hand
    started = time.perf_counter()
    for child in children:
        child.join()
    elapsed = time.perf_counter() - started
    if any(child.exitcode for child in children):
        raise RuntimeError(f"a fold replica failed: {[c.exitcode for c in children]}")
    return {f"reporting_fold_{replicas}_replicas_per_s": sum(folded[:]) / elapsed}


def replay_replicas(url: str, size: tuple[int, int, int], replicas: int, batch: int) -> dict[str, float]:
    """``size``'s tally changes on ``ketnap.tally-changes``, consumed by ``replicas`` reporting
    services (processes of their own, the whole service: decoding, offsets, outbox, the
    rollup feed) into a new database at ``url`` with the branches registered."""
    asyncio.run(_registered(url, size[0], batch))
    with broker() as running:
        total = asyncio.run(_fill_changes(running.bootstrap, size, batch))
        # As in production, tables are analysed as they grow (the end-to-end year does the same)
        with AutovacuumStandIn([url]) as maintenance:
            figures = asyncio.run(_timed_replicas(running.bootstrap, url, total, replicas))
        return figures | {
            f"reporting_replay_{replicas}_replicas_stand_in_analyses": float(maintenance.analyses),
            f"reporting_replay_{replicas}_replicas_stand_in_vacuums": float(maintenance.vacuums),
        }


async def _fill_changes(bootstrap: str, size: tuple[int, int, int], batch: int) -> int:
    """The year's changes as the quota publishes them (its own encoder); their count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    total = 0
    try:
        for chunk in changes(registrations(size[0]), *size[1:], batch * 20):
            futures = []
            for c in chunk:
                key = (c.branch_id, date.fromordinal(c.day), *NAMES[c.series])
                m = tally_change_from(key, 1, c.value, c.version, f"evt-{total}", ())
                futures.append(await producer.send(m.topic, m.value, key=m.key))
                total += 1
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return total


async def _timed_replicas(bootstrap: str, url: str, total: int, replicas: int) -> dict[str, float]:
    """Timed from every replica holding partitions (the group settled) to the last commit,
    counting the changes committed meanwhile."""
    async with Replicas("reporting", bootstrap, url, replicas) as group:
        await group.settled(partitions_of(TALLY_CHANGES) + partitions_of(REFERENCE_EVENTS), within=600)
        counted, elapsed = await group.committing(TALLY_CHANGES, total)
        behind = await _feed_behind(url, group)
    return {
        f"reporting_replay_{replicas}_replicas_per_s": counted / elapsed,
        f"reporting_replay_{replicas}_replicas_counted": float(counted),
        f"reporting_replay_{replicas}_replicas_feed_behind_s": behind,
    }


async def _feed_behind(url: str, group: Replicas) -> float:
    """Seconds from the last change committed until the rollups feed has built every
    document they changed (no dirty mark left): the feed's lag at the end of the replay,
    which the changes/s figure does not include."""
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        while True:
            async with engine.connect() as connection:
                if not await marks_waiting(connection):
                    return time.perf_counter() - started
            group.check()
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


def _fold_replica(
    url: str, size: tuple[int, int, int], batch: int, index: int, replicas: int, ready: Any, folded: Any
) -> None:
    """One replica (in a child process): its partitions' share of every batch, folded in turn."""
    branches = registrations(size[0])
    mine = {b.branch_id for b in branches if replica_of(b.branch_id, replicas) == index}
    # A replica's batches are as big as one replica's: it reads its partitions at the same pace.
    chunks = [
        [c for c in chunk if c.branch_id in mine] for chunk in changes(branches, *size[1:], batch * replicas)
    ]

    async def fold() -> None:
        engine, folder = make_engine(url), Folder(Placer(load_org_trees()))
        try:
            async with engine.connect() as connection:  # the pool's connection made before the clock
                await connection.execute(text("SELECT 1"))
            ready.wait(timeout=600)
            async with PeriodicCollector():  # as the service runs it
                for chunk in chunks:
                    async with engine.begin() as connection:
                        await folder.fold(connection, chunk)
                    folded[index] += len(chunk)
        finally:
            await engine.dispose()

    asyncio.run(fold())


async def latencies(reads: ReportingReads, repeats: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    worst = 0.0
    for name, (unit_id, tree) in QUERIES.items():
        for label, period in PERIODS.items():
            question = reads.question(unit_id, period, tree, "admitted", "all")
            started = time.perf_counter()
            await reads.rollup(question)  # nothing cached yet: the cost while changes keep flowing
            figures[f"query_{name}_{label}_first_ms"] = (time.perf_counter() - started) * 1000
            timings = []
            for attempt in range(repeats + 5):
                started = time.perf_counter()
                await reads.rollup(question)
                if attempt >= 5:  # warm-up excluded
                    timings.append((time.perf_counter() - started) * 1000)
            figures[f"query_{name}_{label}_p50_ms"] = percentile(timings, 50)
            figures[f"query_{name}_{label}_p99_ms"] = percentile(timings, 99)
            worst = max(worst, figures[f"query_{name}_{label}_p99_ms"])
    figures["query_p99_ms"] = worst
    return figures


async def _loaded(url: str, quick: bool) -> tuple[AsyncEngine, ReportingReads, dict[str, float]]:
    """A migrated database with ``quick``'s year folded into it (the fold timed), analysed."""
    engine = make_engine(url)
    await migrate(engine, "reporting")
    placer = Placer(load_org_trees())
    size = QUICK_SIZE if quick else FULL_SIZE
    async with PeriodicCollector():  # as the service runs it
        figures = await load(engine, Folder(placer), size, Settings().reporting_batch)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    return engine, ReportingReads(engine, RollupReader(placer)), figures


def _measured(quick: bool, query_runs: int) -> Generator[dict[str, float]]:
    """The fold of a loaded year with the first round of queries, then a round per later run.
    One event loop (``asyncio.Runner``) serves every round, so each run is timed when asked."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_database(Path(tmp), "reporting") as url,
        asyncio.Runner() as runner,
    ):
        if os.environ.get("KETNAP_BENCH_DATABASE") == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'reporting.sqlite'}"
        engine, reads, fold = runner.run(_loaded(url, quick))
        if not is_sqlite(url):  # SQLite has one writer: a second replica would only wait for it
            with fresh_database(Path(tmp), "reporting_replicas") as replicas_url:
                size = QUICK_SIZE if quick else FULL_SIZE
                fold |= fold_replicas(replicas_url, size, REPLICAS, Settings().reporting_batch)
            with fresh_database(Path(tmp), "reporting_replay") as replay_url:
                fold |= replay_replicas(replay_url, size, REPLICAS, Settings().reporting_batch)
        try:
            for _ in range(query_runs):
                yield fold | runner.run(latencies(reads, 50 if quick else 200))
                fold = {}  # the fold's figures belong to the first run only
        finally:
            runner.run(engine.dispose())


def run(quick: bool) -> dict[str, float]:
    rounds = _measured(quick, 1)
    try:
        return next(rounds)
    finally:
        rounds.close()  # the database goes now, not when the generator is collected


def run_repeated(quick: bool, repeats: int) -> Generator[dict[str, float]]:
    """The year is folded once and the queries asked in each run on it: a full run's ~3.6 M
    changes take about 5 min to fold on a quiet machine (13,600 changes/s, 2026-12-06), and
    a quick run's registering of its branches costs about as much as its fold."""
    yield from _measured(quick, repeats)


if __name__ == "__main__":
    for name, value in run("--quick" in sys.argv).items():
        print(f"{name:40s} {value:12.2f}")
