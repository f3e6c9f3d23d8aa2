"""Scenario 1, happy path at volume: three provinces send at once onto a 6-partition topic.

0 lost, 0 double-counted, every rollup equals the sum of its children, rollup
versions only rise (on ``ketnap.rollups``, per key, in offset order), tally-change
versions rise by one per key, and the months of a province's year add up to its year.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from shared.topics import CANDIDATE_EVENTS, ROLLUPS, TALLY_CHANGES
from tests.reliability.conftest import OpenCluster
from tests.reliability.harness import (
    Client,
    ClusterSpec,
    Figures,
    read_topic,
    scaled,
    tally_version_breaks,
    verify,
    version_breaks,
    wire_differences,
)
from tests.reliability.model import (
    by_province,
    candidate_stories,
    expected_tallies,
    make_world,
    province_token,
)

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

EVENTS = scaled(6_000, 100_000)
COMMUNES = scaled(4, 20)


def months_add_up(records: list[Any], expected: dict[tuple[str, int], int]) -> list[Any]:
    """Σ of a legacy province's latest monthly ``admitted/all`` documents == its year in the model."""
    latest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[record.key.decode()] = orjson.loads(record.value)
    sums: Counter[tuple[str, int]] = Counter()
    for doc in latest.values():
        if doc["tree"] == "legacy" and doc["unit"]["level"] == "province":
            sums[(doc["unit"]["id"], int(doc["month"][:4]))] += (
                doc["metrics"].get("admitted", {}).get("all", 0)
            )
    return [(k, v, sums.get(k, 0)) for k, v in expected.items() if sums.get(k, 0) != v]


async def test_happy_path_at_volume(open_cluster: OpenCluster, book: list[Figures]) -> None:
    started = time.monotonic()
    world = make_world(communes_per_province=COMMUNES, branches_per_commune=3)
    spec = ClusterSpec(world.tokens(), partitions={CANDIDATE_EVENTS: 6})
    figures = Figures("01 happy path at volume")
    book.append(figures)
    async with open_cluster(spec) as cluster:
        client = Client(cluster)
        await client.post(world.registrations() + world.targets())
        streams = by_province(world, candidate_stories(world, EVENTS, seed=1))
        await asyncio.gather(
            *(client.post_stream(events, province_token(p), batch=500) for p, events in streams.items())
        )
        posted = time.monotonic() - started
        print(f"posted in {posted:.1f}s", flush=True)
        verdict = await verify(cluster, world, client.accepted_events())
        print(f"verified at {time.monotonic() - started:.1f}s", flush=True)
        tally_records = await read_topic(cluster.broker.bootstrap, TALLY_CHANGES)
        await asyncio.sleep(2.5)  # rollup documents are coalesced to one per key and second
        rollup_records = await read_topic(cluster.broker.bootstrap, ROLLUPS)
        expected = expected_tallies(client.accepted_events())
        wire_wrong = wire_differences(expected, tally_records)
        tally_breaks = tally_version_breaks(tally_records)
        rollup_breaks = version_breaks(rollup_records, lambda d: (d["tree"], d["unit"]["id"], d["month"]))
        year_admitted: Counter[tuple[str, int]] = Counter()
        for (branch, day, metric, category), n in expected.items():
            if metric == "admitted" and category == "all":
                year_admitted[(next(b.province for b in world.branches if b.id == branch), day.year)] += n
        months_wrong = months_add_up(rollup_records, dict(year_admitted))
        ledger = client.ledger
        figures.sent, figures.accepted, figures.rejected = (
            len(client.sent),
            len(ledger.accepted),
            len(ledger.rejected),
        )
        figures.fill(cluster, verdict)
        figures.seconds = time.monotonic() - started
        figures.passed = (
            verdict.ok
            and not ledger.rejected
            and not wire_wrong
            and not tally_breaks
            and not rollup_breaks
            and not months_wrong
            and verdict.dead_lettered == 0
        )
        figures.notes = (
            f"{verdict.counted_events:,} counted tallies checked per branch and year, "
            f"{len(tally_records):,} tally changes and {len(rollup_records):,} rollup documents on the wire; "
            f"{len(tally_breaks)} tally-version and {len(rollup_breaks)} rollup-version breaks"
        )
        assert not ledger.rejected, {i: ledger.codes[i] for i in list(ledger.rejected)[:10]}
        assert verdict.ok, verdict.explain()
        assert verdict.dead_lettered == 0
        assert not wire_wrong, wire_wrong[:10]
        assert not tally_breaks, tally_breaks[:10]
        assert not rollup_breaks, rollup_breaks[:10]
        assert not months_wrong, months_wrong
