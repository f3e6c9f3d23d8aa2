"""Scenario 6, broker freeze: Tansu SIGSTOPped under load, three times.

While the broker cannot acknowledge, the intake answers 503 (with Retry-After) and
never 202: no request that began and ended inside a freeze may be a 202, and every
id ever answered accepted must be on the topics afterwards. After each thaw the
consumers recover (have consumed everything the broker held at the thaw) within
30 s. The client retries with the same ids: 0 lost, 0 double-counted.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS, TALLY_CHANGES
from tests.reliability.conftest import OpenCluster
from tests.reliability.harness import (
    Client,
    Cluster,
    ClusterSpec,
    Figures,
    scaled,
    topic_ids,
    verify,
)
from tests.reliability.model import candidate_stories, make_world

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

EVENTS = scaled(2_500, 30_000)
FREEZES = scaled(2, 3)
FREEZE_S = scaled(6.0, 20.0)  # above the intake's 5 s publish timeout, so requests do time out
BETWEEN_S = scaled(3.0, 10.0)
RECOVERY_LIMIT_S = scaled(60.0, 30.0)  # the scenario's 30 s, with a margin on a loaded CI machine


async def recovery(cluster: Cluster) -> float:
    """Seconds from now until quota, then reporting, consumed everything the broker held (at that point)."""
    started = time.monotonic()
    for service, topic in (("quota", CANDIDATE_EVENTS), ("reporting", TALLY_CHANGES)):
        ends = await cluster.end_offsets([topic])
        while True:
            if not await cluster.behind(service, ends):
                break
            await asyncio.sleep(0.25)
    return time.monotonic() - started


async def test_broker_freeze(open_cluster: OpenCluster, book: list[Figures]) -> None:
    started = time.monotonic()
    world = make_world(communes_per_province=scaled(3, 10), branches_per_commune=2, tag="f")
    figures = Figures("06 broker freeze")
    book.append(figures)
    async with open_cluster(ClusterSpec(world.tokens())) as cluster:
        client = Client(cluster, patience=600)
        stories = candidate_stories(world, EVENTS, seed=6, prefix="f")
        pace = (FREEZES * (FREEZE_S + BETWEEN_S)) / (EVENTS / 100)
        sending = asyncio.create_task(client.send_world(world, stories, batch=100, pace=pace))
        windows, recoveries = [], []
        for _ in range(FREEZES):
            await asyncio.sleep(BETWEEN_S)
            frozen_at = time.monotonic()
            cluster.broker.freeze()
            await asyncio.sleep(FREEZE_S)
            cluster.broker.thaw()
            windows.append((frozen_at, time.monotonic()))
            recoveries.append(await recovery(cluster))
        await sending
        verdict = await verify(cluster, world, client.accepted_events())
        ledger = client.ledger
        unconfirmed = [
            r for r in ledger.requests if r[2] == 202 and any(a <= r[0] and r[1] <= b for a, b in windows)
        ]
        during = [r for r in ledger.requests if any(a <= r[1] <= b + 1 for a, b in windows)]
        on_topics = await topic_ids(cluster.broker.bootstrap, CANDIDATE_EVENTS)
        on_topics.update(await topic_ids(cluster.broker.bootstrap, REFERENCE_EVENTS))
        missing = ledger.accepted - set(on_topics)
        figures.sent, figures.accepted = len(client.sent), len(ledger.accepted)
        figures.rejected = len(ledger.rejected)
        figures.faults = FREEZES
        figures.fill(cluster, verdict)
        figures.seconds = time.monotonic() - started
        figures.passed = (
            verdict.ok
            and not unconfirmed
            and not missing
            and max(recoveries) <= RECOVERY_LIMIT_S
            and ledger.http[503] > 0
        )
        figures.notes = (
            f"{FREEZES} freezes of {FREEZE_S:g} s; answers ending in a freeze: {len(during)} "
            f"({sum(1 for r in during if r[2] == 503)} × 503, {sum(1 for r in during if r[2] == 202)} × 202 "
            f"begun before it); 202 for a write begun and answered while frozen: {len(unconfirmed)}; "
            f"accepted ids missing from the topics: {len(missing)}; consumers recovered in "
            f"{', '.join(f'{r:.1f}' for r in recoveries)} s; client retries {ledger.retries}"
        )
        assert not ledger.rejected, {i: ledger.codes[i] for i in list(ledger.rejected)[:10]}
        assert not unconfirmed, unconfirmed[:5]
        assert not missing, sorted(missing)[:10]
        assert ledger.http[503] > 0, "a freeze longer than the publish timeout must be answered 503"
        assert verdict.ok, verdict.explain()
        assert verdict.dead_lettered == 0
        assert max(recoveries) <= RECOVERY_LIMIT_S, recoveries
