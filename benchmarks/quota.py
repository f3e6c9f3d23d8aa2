"""Quota service throughput and freshness, on PostgreSQL when it is there (SQLite otherwise).

- ``quota_replay_events_per_s``: a full ``ketnap.candidate-events`` topic (branches and
  targets registered first) replayed by the quota service to committed tallies:
  events / seconds from the first batch to the last commit (group join excluded).
- ``quota_replay_time_ordered_events_per_s``: the same events sorted by their time, as a
  year's topic holds them. The feed above gives each candidate's events one after the
  other, so a batch usually holds a candidate's whole history (one state write for
  several events); in time order nearly every event is its candidate's only one in its
  batch, each a state read and write: the dearer, more realistic case.
- ``quota_replay_2_replicas_events_per_s``: the same replay by two replicas of the
  service, each a process of its own in one consumer group on the same database (how a
  second core is put to work: one process uses one). The replicas join the group first,
  then the events are put on the topic; timed from the end of that fill to the last
  commit (events committed during the fill not counted). On PostgreSQL only.
- ``quota_freshness_p50_ms`` / ``quota_freshness_p99_ms``: events produced at 2,000/s
  by another process; the age of each event (producer timestamp -> database commit of
  its batch), as the consumer plumbing measures it.

The service runs in this process through its own lifespan (consumers, outbox relay,
maintenance), so the figures include the relay publishing tally changes meanwhile.
Run alone: ``python -m benchmarks.quota [--quick]``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer

from benchmarks.common import (
    Replicas,
    broker,
    fresh_database,
    percentile,
    postgres_available,
    service_settings,
)
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS, partitions_of

if TYPE_CHECKING:
    from tests.integration.quota.feed import Feed

QUICK_RUNS = 1
QUICK_RUNS_WHY = (
    "a run's two brokers, databases, services and group joins cost ~20 s against ~7 s of measuring"
)


async def _fill(bootstrap: str, events: list[dict[str, Any]], topic: str) -> None:
    from tests.integration.quota.feed import encode

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        futures = []
        for event in events:
            key, value = encode(event)
            futures.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _until(predicate: Any, within: float, step: float = 0.02) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark did not finish in time")
        await asyncio.sleep(step)


async def _replay(bootstrap: str, url: str, feed: Feed) -> dict[str, float]:
    total, rate = await _replay_events(bootstrap, url, feed.candidates, feed.reference)
    return {"quota_replay_events": float(total), "quota_replay_events_per_s": rate}


async def _replay_time_ordered(bootstrap: str, url: str, feed: Feed) -> dict[str, float]:
    """The same events in the order they happened, as a year's topic holds them."""
    ordered = sorted(feed.candidates, key=lambda event: datetime.fromisoformat(event["time"]))
    _, rate = await _replay_events(bootstrap, url, ordered, feed.reference)
    return {"quota_replay_time_ordered_events_per_s": rate}


async def _replay_events(
    bootstrap: str, url: str, candidates: list[dict[str, Any]], reference: list[dict[str, Any]]
) -> tuple[int, float]:
    """Fill the topics, then time the service from its first batch to the last commit."""
    from services.quota.app import create_app

    await _fill(bootstrap, reference, REFERENCE_EVENTS)
    await _fill(bootstrap, candidates, CANDIDATE_EVENTS)
    total = len(candidates)
    app = create_app(service_settings("quota", bootstrap, url))
    async with app.router.lifespan_context(app):
        consumer = app.state.quota_consumers[0]
        await _until(lambda: consumer.records >= total, within=1800)
        elapsed = time.perf_counter() - consumer.first_batch_at
    return total, total / elapsed


REPLICAS = 2


async def _replay_replicas(bootstrap: str, url: str, feed: Feed, replicas: int) -> dict[str, float]:
    """The quick or full feed replayed by ``replicas`` service processes in one group.

    The replicas start on an empty candidate topic and the events are put on it once each
    holds partitions: a replica that joined late would leave the first to replay alone.
    Timed from the end of the fill (the producer no longer shares the cores) to the last
    commit, counting the positions committed in the database meanwhile (a redelivery is
    not counted twice there), read every 0.1 s."""
    await _fill(bootstrap, feed.reference, REFERENCE_EVENTS)
    async with Replicas("quota", bootstrap, url, replicas) as group:
        await group.settled(partitions_of(CANDIDATE_EVENTS), within=300)
        await _fill(bootstrap, feed.candidates, CANDIDATE_EVENTS)
        counted, elapsed = await group.committing(CANDIDATE_EVENTS, len(feed.candidates))
    return {f"quota_replay_{replicas}_replicas_events_per_s": counted / elapsed}


def replay_events_per_s(events: list[dict[str, Any]], reference: list[dict[str, Any]]) -> float:
    """Ketnap's replay of someone else's candidate events (the peer benchmark's feed), its
    reference events (branch registrations) on their topic first and not timed."""
    with tempfile.TemporaryDirectory() as tmp, broker() as running, fresh_database(Path(tmp), "peer") as url:
        _, rate = asyncio.run(_replay_events(running.bootstrap, url, events, reference))
    return rate


def _produce_steadily(bootstrap: str, rate: int, seconds: float, seed: int) -> None:
    """In a child process: ``rate`` events a second for ``seconds``, in 20 ms slices."""

    async def go() -> None:
        from tests.integration.quota.feed import encode, make_feed

        events = make_feed(int(rate * seconds / 3.6) + 10, branches=500, seed=seed).candidates
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
        await producer.start()
        start, sent, n = time.monotonic(), 0, int(rate * seconds)
        while sent < n:
            due = min(n, int((time.monotonic() - start) * rate) + 1)
            for event in events[sent:due]:
                key, value = encode(event)
                await producer.send(CANDIDATE_EVENTS, value, key=key)
            sent = due
            await asyncio.sleep(0.02)
        await producer.flush()
        await producer.stop()

    asyncio.run(go())


async def _freshness(bootstrap: str, url: str, rate: int, seconds: float) -> dict[str, float]:
    from services.quota.app import create_app

    app = create_app(service_settings("quota", bootstrap, url))
    async with app.router.lifespan_context(app):
        consumer = app.state.quota_consumers[0]
        await asyncio.sleep(3)  # joined and idle
        consumer.freshness_samples.clear()
        before = consumer.records
        child = multiprocessing.get_context("spawn").Process(
            target=_produce_steadily, args=(bootstrap, rate, seconds, 7)
        )
        child.start()
        await asyncio.to_thread(child.join)
        expected = before + int(rate * seconds)
        await _until(lambda: consumer.records >= expected, within=120)
        ages = [a * 1000 for a in consumer.freshness_samples]
    return {
        "quota_freshness_p50_ms": percentile(ages, 50),
        "quota_freshness_p99_ms": percentile(ages, 99),
        "quota_freshness_events": float(len(ages)),
    }


def run(quick: bool) -> dict[str, float]:
    from tests.integration.quota.feed import make_feed

    candidates = 6_000 if quick else 53_000  # ~3.8 events each: ~23,000 / ~200,000 events
    feed = make_feed(candidates, branches=2000, seed=42)  # one feed, replayed three ways
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with broker() as running, fresh_database(Path(tmp), "quota_replay") as url:
            figures |= asyncio.run(_replay(running.bootstrap, url, feed))
        with broker() as running, fresh_database(Path(tmp), "quota_ordered") as url:
            figures |= asyncio.run(_replay_time_ordered(running.bootstrap, url, feed))
        if postgres_available():  # SQLite has one writer: a second replica would only wait for it
            with broker() as running, fresh_database(Path(tmp), "quota_replicas") as url:
                figures |= asyncio.run(_replay_replicas(running.bootstrap, url, feed, REPLICAS))
        with broker() as running, fresh_database(Path(tmp), "quota_fresh") as url:
            figures |= asyncio.run(_freshness(running.bootstrap, url, 2000, 3 if quick else 15))
    return figures


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
