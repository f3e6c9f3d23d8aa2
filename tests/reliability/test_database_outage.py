"""Scenario 5, database outage: PostgreSQL stopped under load, three times.

Quota and reporting keep their databases on a PostgreSQL cluster this test starts
itself (never the suite's shared server), so it can be stopped; the intake's
database stays up, so events keep arriving during each outage. During an outage
the consumers commit no offset, retry at most once a second, and ``/readyz`` says
503; afterwards it says 200 and they catch up: nothing dead-lettered, nothing lost.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.topics import CANDIDATE_EVENTS, TALLY_CHANGES
from tests.conftest import fresh_database_url
from tests.reliability.conftest import OpenCluster
from tests.reliability.harness import (
    Client,
    Cluster,
    ClusterSpec,
    Figures,
    PrivatePostgres,
    committed_offsets,
    log_times,
    scaled,
    verify,
)
from tests.reliability.model import candidate_stories, make_world

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.timeout(scaled(600, 3600))]

EVENTS = scaled(2_500, 30_000)
OUTAGES = 3
OUTAGE_S = scaled(4.0, 30.0)
BETWEEN_S = scaled(3.0, 15.0)
READINESS_LAG_S = 3.0  # a readiness check times out after 2 s: the first polls may still say 200
COMMIT_GRACE_S = 1.0  # a batch committed to the database just before the stop may still commit its offset
CONSUMERS = {"quota": ("ketnap-quota", CANDIDATE_EVENTS), "reporting": ("ketnap-reporting", TALLY_CHANGES)}
RETRY_LINES = ("batch transaction failed", "outbox publish failed")


@dataclass
class Outage:
    started: float  # epoch seconds
    ended: float = 0.0
    recovered_s: float = 0.0
    ready_while_down: list[str] = field(default_factory=list)  # services that said 200 during it
    not_ready_polls: int = 0
    committed_during: dict[str, bool] = field(default_factory=dict)


async def statuses(cluster: Cluster) -> dict[str, int]:
    found = {}
    for service in CONSUMERS:
        for replica in cluster.of(service):
            try:
                found[replica.name] = (await cluster.http.get(f"{replica.url}/readyz", timeout=5)).status_code
            except Exception:
                found[replica.name] = 0
    return found


async def committed(cluster: Cluster) -> dict[str, dict[int, int]]:
    return {s: await committed_offsets(cluster.broker.bootstrap, g, t) for s, (g, t) in CONSUMERS.items()}


async def outage(cluster: Cluster, pg: PrivatePostgres) -> Outage:
    """Stop PostgreSQL for ``OUTAGE_S``, watching readiness and commits; start it; wait until ready."""
    await asyncio.to_thread(pg.stop)
    seen = Outage(started=time.time())
    first: dict[str, dict[int, int]] | None = None
    while time.time() - seen.started < OUTAGE_S:
        elapsed = time.time() - seen.started
        if first is None and elapsed >= COMMIT_GRACE_S:
            first = await committed(cluster)
        if elapsed >= READINESS_LAG_S:
            polled = await statuses(cluster)
            seen.ready_while_down += [name for name, status in polled.items() if status == 200]
            seen.not_ready_polls += sum(1 for status in polled.values() if status == 503)
        await asyncio.sleep(0.5)
    last = await committed(cluster)
    seen.committed_during = {s: first is not None and first[s] != last[s] for s in CONSUMERS}
    await asyncio.to_thread(pg.start)
    seen.ended = time.time()
    seen.recovered_s = await cluster.wait_ready([r for s in CONSUMERS for r in cluster.of(s)], within=120)
    return seen


def fastest_retry(cluster: Cluster, outages: list[Outage]) -> float | None:
    """The shortest gap between two retries of one loop (per process, group and kind) during the outages."""
    gaps: list[float] = []
    for service in CONSUMERS:
        for replica in cluster.of(service):
            for kind in RETRY_LINES:
                times: dict[str, list[float]] = {}
                for at, line in log_times(replica.log, kind):
                    if any(o.started <= at <= o.ended for o in outages):
                        times.setdefault(str(line.get("group") or line.get("table")), []).append(at)
                for series in times.values():
                    gaps += [b - a for a, b in itertools.pairwise(series)]
    return min(gaps) if gaps else None


async def test_database_outage(open_cluster: OpenCluster, tmp_path: Path, book: list[Figures]) -> None:
    if reason := PrivatePostgres.unavailable():
        pytest.skip(reason)
    started = time.monotonic()
    world = make_world(communes_per_province=scaled(3, 10), branches_per_commune=2, tag="o")
    figures = Figures("05 database outage")
    book.append(figures)
    pg = PrivatePostgres()
    await asyncio.to_thread(pg.init)
    try:
        urls = {
            "intake": await fresh_database_url(tmp_path, "outage-intake"),
            "quota": await pg.create_database("quota"),
            "reporting": await pg.create_database("reporting"),
        }
        async with open_cluster(ClusterSpec(world.tokens()), database_urls=urls) as cluster:
            client = Client(cluster)
            stories = candidate_stories(world, EVENTS, seed=5, prefix="o")
            pace = (OUTAGES * (OUTAGE_S + BETWEEN_S)) / (EVENTS / 100)
            sending = asyncio.create_task(client.send_world(world, stories, batch=100, pace=pace))
            outages = []
            for _ in range(OUTAGES):
                await asyncio.sleep(BETWEEN_S)
                outages.append(await outage(cluster, pg))
            await sending
            verdict = await verify(cluster, world, client.accepted_events())
            gap = fastest_retry(cluster, outages)
            ledger = client.ledger
            figures.sent, figures.accepted = len(client.sent), len(ledger.accepted)
            figures.rejected = len(ledger.rejected)
            figures.faults = pg.stops
            figures.fill(cluster, verdict)
            figures.seconds = time.monotonic() - started
            leaks = [o.ready_while_down for o in outages if o.ready_while_down]
            commits = [o.committed_during for o in outages if any(o.committed_during.values())]
            figures.passed = (
                verdict.ok
                and verdict.dead_lettered == 0
                and not leaks
                and not commits
                and all(o.not_ready_polls for o in outages)
                and (gap is None or gap >= 0.9)
            )
            figures.notes = (
                f"{OUTAGES} outages of {OUTAGE_S:g} s (private cluster, quota and reporting databases); "
                f"/readyz 503 polls per outage {[o.not_ready_polls for o in outages]}, "
                f"200 during: {len(leaks)}; "
                f"offsets committed during an outage: {len(commits)}; fastest retry gap "
                f"{'-' if gap is None else f'{gap:.2f} s'}; ready again after "
                f"{', '.join(f'{o.recovered_s:.1f}' for o in outages)} s"
            )
            assert not ledger.rejected, {i: ledger.codes[i] for i in list(ledger.rejected)[:10]}
            assert verdict.ok, verdict.explain()
            assert verdict.dead_lettered == 0
            assert not leaks, f"/readyz said 200 while the database was down: {leaks}"
            assert all(o.not_ready_polls for o in outages)
            assert not commits, f"offsets committed while the database was down: {commits}"
            assert gap is None or gap >= 0.9, f"retried {gap:.2f} s after the previous attempt"
    finally:
        await asyncio.to_thread(pg.destroy)
