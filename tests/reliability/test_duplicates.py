"""Scenario 2, duplicate storm: accepted events re-published on the topic and resubmitted over HTTP.

Records of the candidate topic are put back on it byte for byte (a producer retry,
a replayed partition), and accepted events are posted again (a province resending
its file). Every resubmission is answered ``duplicate``; 0 double-counted.
"""

from __future__ import annotations

import random
import time

import pytest

from shared.topics import CANDIDATE_EVENTS
from tests.reliability.harness import (
    Client,
    Cluster,
    Figures,
    publish_raw,
    read_topic,
    scaled,
    verify,
)
from tests.reliability.model import candidate_stories, chunks, make_world

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

EVENTS = scaled(2_000, 20_000)
ON_TOPIC = scaled(1_000, 5_000)
OVER_HTTP = scaled(400, 2_000)


async def test_duplicate_storm(shared_cluster: Cluster, book: list[Figures]) -> None:
    started, cluster = time.monotonic(), shared_cluster
    mark = cluster.mark()
    rng = random.Random(2)
    world = make_world(("P04", "P11", "P12"), communes_per_province=scaled(3, 8), branches_per_commune=2)
    figures = Figures("02 duplicate storm")
    book.append(figures)
    client = Client(cluster)
    await client.send_world(world, candidate_stories(world, EVENTS, seed=2, prefix="d"))
    await cluster.settle()
    ours = [
        r for r in await read_topic(cluster.broker.bootstrap, CANDIDATE_EVENTS) if r.key.startswith(b"d2-")
    ]
    again = [rng.choice(ours) for _ in range(ON_TOPIC)]
    await publish_raw(
        cluster.broker.bootstrap, CANDIDATE_EVENTS, [(r.key, r.value, list(r.headers)) for r in again]
    )
    resent = rng.sample(sorted(client.ledger.accepted), OVER_HTTP)
    answers = [await client.post([client.sent[i] for i in batch]) for batch in chunks(resent, 200)]
    not_duplicate = [r for a in answers for r in a["results"] if r["status"] != "duplicate"]
    verdict = await verify(cluster, world, client.accepted_events(), scope=set(client.sent))
    ledger = client.ledger
    figures.sent, figures.accepted = len(client.sent) + ON_TOPIC + OVER_HTTP, len(ledger.accepted)
    figures.rejected = len(ledger.rejected)
    figures.faults = ON_TOPIC + OVER_HTTP
    figures.fill(cluster, verdict, since=mark)
    figures.seconds = time.monotonic() - started
    figures.passed = verdict.ok and not not_duplicate and verdict.dead_lettered == 0
    figures.notes = (
        f"{len(client.sent):,} distinct events, then {ON_TOPIC:,} records re-published on "
        f"{CANDIDATE_EVENTS} and {OVER_HTTP:,} resubmitted over HTTP (answered duplicate: "
        f"{OVER_HTTP - len(not_duplicate):,}); sent counts the copies"
    )
    assert not ledger.rejected, {i: ledger.codes[i] for i in list(ledger.rejected)[:10]}
    assert not not_duplicate, not_duplicate[:10]
    assert verdict.ok, verdict.explain()
    assert verdict.dead_lettered == 0
