"""Batches decided before their transaction (``CandidatePipeline``): kept when nothing moved,
decided again when something did; the tallies equal the model either way.

On PostgreSQL the consumer overlaps a batch's preparation with the previous batch's
transaction; on SQLite it prepares and commits in turn. Events are shuffled across
candidates so that most candidates span several batches (the next batch builds on the
previous one's planned, not yet committed, states).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.quota.cache import StateCache
from services.quota.handlers import CandidatePipeline, Plan
from services.quota.tables import processed, rejections, tallies
from shared.consumer import BatchConsumer, ConsumerSpec, Record
from shared.db import make_engine, migrate
from shared.settings import Settings
from shared.topics import CANDIDATE_EVENTS
from tests.conftest import fresh_database_url
from tests.integration.quota.feed import chunks, expected_tallies, make_feed
from tests.integration.quota.recording import FakeRecord, RecordingConsumer

pytestmark = pytest.mark.integration


Meddle = Callable[[int, Plan], Awaitable[None]]


class _Run:
    """A pipelined consumer over ``records`` in batches; ``meddle`` runs after each preparation."""

    def __init__(self, engine: AsyncEngine, meddle: Meddle | None = None) -> None:
        self.engine, self.meddle = engine, meddle
        self.pipeline = CandidatePipeline(engine, StateCache(Settings().quota_state_cache))
        self.consumer = BatchConsumer(
            ConsumerSpec("quota", "ketnap-quota", (CANDIDATE_EVENTS,)),
            self.pipeline.handle,
            engine,
            Settings(service="quota"),
            prepare=self._prepare,
        )
        self.plans: list[Plan] = []

    async def _prepare(self, records: Sequence[Record]) -> Plan:
        plan = await self.pipeline.prepare(records)
        self.plans.append(plan)
        if self.meddle is not None:
            await self.meddle(len(self.plans) - 1, plan)
        return plan

    async def __call__(self, records: list[FakeRecord], size: int) -> RecordingConsumer:
        kafka = RecordingConsumer()
        for batch in chunks(records, size):
            await self.consumer.consume(kafka, batch)  # type: ignore[arg-type]
        await self.consumer.settle()
        return kafka


def _records(events: list[dict[str, Any]]) -> list[FakeRecord]:
    return [FakeRecord(n % 3, n // 3, orjson.dumps(e)) for n, e in enumerate(events)]


def _shuffled(candidates: int, seed: int) -> list[dict[str, Any]]:
    events = make_feed(candidates, branches=8, seed=seed).candidates
    random.Random(seed).shuffle(events)
    return events


async def _stored(engine: AsyncEngine) -> dict[tuple[Any, ...], int]:
    async with engine.connect() as c:
        rows = (await c.execute(select(tallies))).all()
    return {(r.branch_id, _day(r.day), r.metric, r.category): r.value for r in rows if r.value}


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def _engine(tmp_path: Path) -> AsyncEngine:
    engine = make_engine(await fresh_database_url(tmp_path))
    await migrate(engine, "quota")
    return engine


async def test_plans_built_on_the_previous_plan_are_kept_and_add_up(tmp_path: Path) -> None:
    events = _shuffled(120, seed=21)
    resent = events[:: len(events) // 10]  # duplicates, some in the very next batch
    engine = await _engine(tmp_path)
    try:
        run = _Run(engine)
        kafka = await run(_records(events + resent), size=40)
        assert await _stored(engine) == expected_tallies(events)
        assert all(plan.kept for plan in run.plans)
        assert sum(plan.leans_on is not None for plan in run.plans) > len(run.plans) // 2
        # A plan holds only its predecessor's outcome, never the plan: a chain of plans
        # kept every batch of a replay alive (3.3 GB for a tenth of the country).
        for before, plan in itertools.pairwise(run.plans):
            assert plan.leans_on is None or plan.leans_on is before.outcome
        assert not kafka.seeks
        assert sum(len(c) for c in kafka.commits) >= len(run.plans)
        async with engine.connect() as c:
            assert len((await c.execute(select(processed.c.event_id))).all()) == len(events)
    finally:
        await engine.dispose()


async def test_a_plan_overtaken_by_another_writer_is_decided_again(tmp_path: Path) -> None:
    events = _shuffled(120, seed=22)
    engine = await _engine(tmp_path)

    async def bump_a_candidate(index: int, plan: Plan) -> None:
        """As the expiry task (or another replica) would: a candidate's row rewritten."""
        if index % 3 == 2 and plan.versions:
            async with engine.begin() as c:
                await c.execute(
                    text("UPDATE quota_candidates SET version = version + 1 WHERE candidate_id = :c"),
                    {"c": next(iter(plan.versions))},
                )

    try:
        run = _Run(engine, bump_a_candidate)
        await run(_records(events), size=40)
        assert await _stored(engine) == expected_tallies(events)
        overtaken = [p for i, p in enumerate(run.plans) if i % 3 == 2 and p.versions]
        assert overtaken
        assert not any(p.kept for p in overtaken)
        assert all(p.kept for p in run.plans if p.leans_on is None and p not in overtaken)
        assert all(not p.kept for p in run.plans if p.leans_on is not None and not p.leans_on.kept)
    finally:
        await engine.dispose()


async def test_an_id_taken_in_meanwhile_is_not_taken_in_twice(tmp_path: Path) -> None:
    events = _shuffled(30, seed=23)
    engine = await _engine(tmp_path)
    stolen: dict[str, str] = {}

    async def take_one_first(index: int, plan: Plan) -> None:
        """Another replica takes in one of the batch's new ids (other content) before its transaction."""
        if index == 1:
            decoded, event = plan.fresh[0]
            stolen[decoded.id] = event.candidate_id
            async with engine.begin() as c:
                await c.execute(
                    processed.insert().values(
                        event_id=decoded.id, digest=b"other", candidate_id="elsewhere", event="{}"
                    )
                )

    try:
        run = _Run(engine, take_one_first)
        await run(_records(events), size=25)
        [(event_id, candidate)] = stolen.items()
        async with engine.connect() as c:
            codes = dict((await c.execute(select(rejections.c.event_id, rejections.c.code))).all())
        assert codes.get(event_id) == "id_conflict"
        assert not run.plans[1].kept
        rest = [e for e in events if e["id"] != event_id]
        assert await _stored(engine) == expected_tallies(rest)
        assert candidate
    finally:
        await engine.dispose()
