"""Scenario 4, rebalances: two quota and two reporting replicas; one of each stopped and started under load.

Every stop (SIGTERM, the replica drains its batch) and start moves partitions
between the replicas of a consumer group; the position fence in each service's
database keeps one writer per partition. 0 lost, 0 double-counted.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.reliability.conftest import OpenCluster
from tests.reliability.harness import Client, Cluster, ClusterSpec, Figures, scaled, verify
from tests.reliability.model import candidate_stories, make_world

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

EVENTS = scaled(2_000, 30_000)
CYCLES = scaled(2, 10)


async def bounce(cluster: Cluster, service: str, cycles: int, rng: random.Random) -> None:
    """Stop the second replica, let the first take every partition, start it again; ``cycles`` times."""
    replica = cluster.of(service)[1]
    for _ in range(cycles):
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        replica.keep_down = True
        await replica.stop()
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        await cluster.restart(replica)


async def test_rebalances(open_cluster: OpenCluster, book: list[Figures]) -> None:
    started = time.monotonic()
    rng = random.Random(4)
    world = make_world(communes_per_province=scaled(3, 10), branches_per_commune=2, tag="r")
    spec = ClusterSpec(world.tokens(), replicas={"intake": 1, "quota": 2, "reporting": 2})
    figures = Figures("04 rebalances (2+2 replicas)")
    book.append(figures)
    async with open_cluster(spec) as cluster:
        client = Client(cluster)
        stories = candidate_stories(world, EVENTS, seed=4, prefix="r")
        sending = client.send_world(world, stories, batch=100, pace=scaled(0.2, 0.1))
        await asyncio.gather(
            sending, bounce(cluster, "quota", CYCLES, rng), bounce(cluster, "reporting", CYCLES, rng)
        )
        verdict = await verify(cluster, world, client.accepted_events())
        ledger = client.ledger
        figures.sent, figures.accepted = len(client.sent), len(ledger.accepted)
        figures.rejected = len(ledger.rejected)
        figures.faults = 2 * CYCLES  # one stop+start of a quota and of a reporting replica per cycle
        figures.fill(cluster, verdict)
        figures.seconds = time.monotonic() - started
        figures.passed = verdict.ok and not ledger.rejected and verdict.dead_lettered == 0
        redelivered = {s: cluster.redeliveries_logged(s) for s in ("quota", "reporting")}
        figures.notes = (
            f"{CYCLES} stop/start cycles of one quota and one reporting replica (SIGTERM, drain, rejoin); "
            f"redeliveries dropped by the fence: quota {redelivered['quota']}, "
            f"reporting {redelivered['reporting']}"
        )
        assert not ledger.rejected, {i: ledger.codes[i] for i in list(ledger.rejected)[:10]}
        assert verdict.ok, verdict.explain()
        assert verdict.dead_lettered == 0
