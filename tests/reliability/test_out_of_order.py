"""Scenario 8, out of order: a province's year replayed shuffled, with days-late batches.

The same year of one province is sent twice into one system, onto two mirrored
sets of branches in the same communes: once in time order, once shuffled with
some days held back and sent last (a district catching up). Each mirrored branch
must end with exactly the tallies (and rollup values) of its ordered twin, and
both with the model.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest

from tests.reliability.harness import (
    Client,
    Cluster,
    Figures,
    branch_tallies,
    rollup,
    scaled,
    verify,
)
from tests.reliability.model import (
    VN,
    Event,
    World,
    candidate_stories,
    chunks,
    make_world,
    province_token,
)

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

PROVINCE = "P38"  # Thanh Hóa
EVENTS = scaled(1_500, 20_000)
LATE_DAY_SHARE = 0.1
YEAR = 2024


def mirror(value: Any) -> Any:
    """The shuffled twin of an ordered event: ids ``s8-…`` for ``q8-…``, branches ``…-s00`` for ``…-o00``."""
    if isinstance(value, dict):
        return {k: mirror(v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("q8-"):
        return "s8-" + value.removeprefix("q8-")
    if isinstance(value, str) and value.startswith("B-"):
        head, _, tail = value.rpartition("-o")
        return f"{head}-s{tail}"
    return value


def shuffled_with_late_days(events: list[Event], rng: random.Random) -> tuple[list[list[Event]], int]:
    """Batches: every event shuffled, except those of ~10 % of the days, sent last, a day per batch."""
    days = sorted({e["time"][:10] for e in events})
    late = set(rng.sample(days, max(1, int(len(days) * LATE_DAY_SHARE))))
    on_time = [e for e in events if e["time"][:10] not in late]
    rng.shuffle(on_time)
    by_day: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e["time"][:10] in late:
            by_day[e["time"][:10]].append(e)
    late_batches = [by_day[d] for d in rng.sample(sorted(by_day), len(by_day))]
    return [*chunks(on_time, 200), *late_batches], sum(len(b) for b in late_batches)


def inversions(batches: list[list[Event]]) -> int:
    """Events that arrived after a later-dated event of the same candidate."""
    latest: dict[str, str] = {}
    count = 0
    for event in (e for batch in batches for e in batch):
        subject = event["subject"]
        if subject in latest and event["time"] < latest[subject]:
            count += 1
        latest[subject] = max(latest.get(subject, ""), event["time"])
    return count


async def test_out_of_order_equals_ordered(shared_cluster: Cluster, book: list[Figures]) -> None:
    started, cluster = time.monotonic(), shared_cluster
    mark = cluster.mark()
    rng = random.Random(8)
    ordered = make_world((PROVINCE,), communes_per_province=scaled(3, 8), branches_per_commune=2, tag="o")
    twins = make_world((PROVINCE,), communes_per_province=scaled(3, 8), branches_per_commune=2, tag="s")
    both = World((PROVINCE,), ordered.branches + twins.branches)
    figures = Figures("08 out of order")
    book.append(figures)
    window = {
        "first": datetime(YEAR, 1, 1, 9, tzinfo=VN),
        "spread_days": 200,
        "until": datetime(YEAR, 12, 31, 12, tzinfo=VN),
    }
    stories = candidate_stories(ordered, EVENTS, seed=8, prefix="q", **window)
    in_order = sorted((e for s in stories for e in s), key=lambda e: (e["time"], e["id"]))
    twin_events = [mirror(e) for e in in_order]
    batches, late = shuffled_with_late_days(twin_events, rng)
    client = Client(cluster)
    token = province_token(PROVINCE)
    await client.post(both.registrations())
    await client.post_stream(in_order, token, batch=200)
    for batch in batches:
        await client.post(batch, token)
    verdict = await verify(
        cluster, both, client.accepted_events(), scope=set(client.sent), years=(YEAR, YEAR + 1)
    )
    observed = await branch_tallies(cluster, [b.id for b in both.branches], (YEAR, YEAR + 1))
    twin_of = {b.id: b.id.replace("-o", "-s") for b in ordered.branches}
    unlike: list[Any] = []
    for branch, twin in twin_of.items():
        mine = {k[1:]: n for k, n in observed.items() if k[0] == branch}
        theirs = {k[1:]: n for k, n in observed.items() if k[0] == twin}
        unlike += [
            (branch, k, mine.get(k, 0), theirs.get(k, 0))
            for k in mine.keys() | theirs.keys()
            if mine.get(k, 0) != theirs.get(k, 0)
        ]
    commune_unlike = []
    for commune in ordered.communes:
        doc = await rollup(cluster, commune, str(YEAR), "legacy", "admitted")
        values = {k["id"]: k["value"] for k in doc["children"]}
        commune_unlike += [
            (b, v, values.get(twin_of[b]))
            for b, v in values.items()
            if b in twin_of and values.get(twin_of[b]) != v
        ]
    ledger = client.ledger
    figures.sent, figures.accepted = len(client.sent), len(ledger.accepted)
    figures.rejected = len(ledger.rejected)
    figures.faults = inversions(batches)
    figures.fill(cluster, verdict, since=mark)
    figures.seconds = time.monotonic() - started
    figures.passed = verdict.ok and not unlike and not commune_unlike and not ledger.rejected
    figures.notes = (
        f"{len(in_order):,} events of {PROVINCE} in {YEAR} sent in order and again shuffled "
        "onto twin branches, "
        f"{late:,} of them in days-late batches; faults = events that arrived after a later-dated event "
        f"of their candidate; twin tallies that differ: {len(unlike)}, twin rollup children that differ: "
        f"{len(commune_unlike)}"
    )
    assert verdict.ok, verdict.explain()
    assert verdict.dead_lettered == 0
    assert not ledger.rejected, {i: ledger.codes[i] for i in list(ledger.rejected)[:10]}
    assert not unlike, unlike[:10]
    assert not commune_unlike, commune_unlike[:10]
