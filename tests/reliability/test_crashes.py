"""Scenario 3, crashes: quota, reporting and intake SIGKILLed again and again during a run.

Quota and reporting are also made to die *between the database commit and the
offset commit* (the consumer's test hook ``KETNAP_FAULT_KILL_AFTER_COMMIT_PROB``):
certainly once each at the start (probability 1 until the first such death), then
now and then. The intake is killed under a client that retries with the same ids.
0 lost, 0 double-counted, and the redeliveries the crashes cause are seen (and dropped).
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from shared.consumer import FAULT_EXIT_CODE, FAULT_KILL_ENV
from tests.reliability.conftest import OpenCluster
from tests.reliability.harness import (
    Client,
    Cluster,
    ClusterSpec,
    Figures,
    scaled,
    verify,
)
from tests.reliability.model import candidate_stories, make_world

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 5400))]

EVENTS = scaled(3_000, 50_000)
KILLS = scaled({"quota": 2, "reporting": 2, "intake": 1}, {"quota": 20, "reporting": 20, "intake": 10})
GAP_S = scaled((1.0, 4.0), (3.0, 12.0))  # between one kill's restart and the next kill
BACKGROUND_PROBABILITY = scaled("0.02", "0.01")
HOOK_CAP = scaled(1, 6)  # deaths between commits per service, beyond the first certain one


async def kill_repeatedly(cluster: Cluster, service: str, times: int, rng: random.Random) -> int:
    """SIGKILL a running replica ``times`` times; the supervisor restarts it, we wait until it is ready."""
    for _ in range(times):
        await asyncio.sleep(rng.uniform(*GAP_S))
        replica = rng.choice(cluster.of(service))
        await cluster.back(replica)
        await replica.kill()
    return times


async def tame_the_hook(cluster: Cluster, stop: asyncio.Event) -> None:
    """After the first death between commits, rarely; after ``HOOK_CAP`` more, never."""
    while not stop.is_set():
        for service in ("quota", "reporting"):
            deaths = cluster.exits(service).count(FAULT_EXIT_CODE)
            probability = BACKGROUND_PROBABILITY if 0 < deaths <= HOOK_CAP else ("1" if not deaths else "0")
            for replica in cluster.of(service):
                replica.env[FAULT_KILL_ENV] = probability
        await asyncio.sleep(0.1)


async def test_crashes(open_cluster: OpenCluster, book: list[Figures]) -> None:
    started = time.monotonic()
    rng = random.Random(3)
    world = make_world(communes_per_province=scaled(3, 10), branches_per_commune=2, tag="k")
    hook = {FAULT_KILL_ENV: "1"}
    spec = ClusterSpec(world.tokens(), service_env={"quota": hook, "reporting": hook})
    figures = Figures("03 crashes (SIGKILL, between commits)")
    book.append(figures)
    async with open_cluster(spec) as cluster:
        client = Client(cluster, patience=600)
        stop = asyncio.Event()
        taming = asyncio.create_task(tame_the_hook(cluster, stop))
        stories = candidate_stories(world, EVENTS, seed=3, prefix="k")
        killers = [kill_repeatedly(cluster, s, n, rng) for s, n in KILLS.items()]
        sending = client.send_world(world, stories, batch=100, pace=scaled(0.3, 0.1))
        await asyncio.gather(sending, *killers)
        verdict = await verify(cluster, world, client.accepted_events())
        stop.set()
        await taming
        hook_deaths = {s: cluster.exits(s).count(FAULT_EXIT_CODE) for s in ("quota", "reporting")}
        redelivered = {s: cluster.redeliveries_logged(s) for s in ("quota", "reporting")}
        ledger = client.ledger
        figures.sent, figures.accepted = len(client.sent), len(ledger.accepted)
        figures.rejected = len(ledger.rejected)
        figures.faults = sum(KILLS.values()) + sum(hook_deaths.values())
        figures.fill(cluster, verdict)
        figures.seconds = time.monotonic() - started
        figures.passed = verdict.ok and all(hook_deaths.values()) and redelivered["quota"] > 0
        figures.notes = (
            f"SIGKILL quota {KILLS['quota']}, reporting {KILLS['reporting']}, intake {KILLS['intake']}; "
            f"died between DB and offset commit: quota {hook_deaths['quota']}, "
            f"reporting {hook_deaths['reporting']}; redeliveries dropped: quota {redelivered['quota']}, "
            f"reporting {redelivered['reporting']}; client retries {ledger.retries}, "
            f"connection errors {ledger.transport_errors}"
        )
        assert not ledger.rejected, {i: ledger.codes[i] for i in list(ledger.rejected)[:10]}
        assert verdict.ok, verdict.explain()
        assert all(hook_deaths.values()), hook_deaths
        # Counted from the logs: a replica killed again before the sampler's next scrape would take
        # its redelivery counter with it (seen in reduced runs), its log lines stay.
        assert redelivered["quota"] > 0, "a death between commits must be followed by a redelivery"
        assert verdict.dead_lettered == 0
