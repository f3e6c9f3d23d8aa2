"""A redelivered batch changes nothing; tallies equal the model; tally changes on the topic add up."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import delete, func, select, text

from services.quota.cache import StateCache
from services.quota.handlers import handle_candidates
from services.quota.tables import candidates, consumer_offsets, outbox, processed, rejections, tallies
from shared.consumer import BatchConsumer, ConsumerSpec
from shared.db import make_engine, migrate
from shared.embedded_broker import EmbeddedBroker
from shared.messages import TallyChange
from shared.metrics import REDELIVERIES
from shared.settings import Settings
from shared.topics import CANDIDATE_EVENTS, TALLY_CHANGES
from tests.conftest import eventually, fresh_database_url
from tests.integration.quota.conftest import read_topic, running_quota
from tests.integration.quota.feed import expected_tallies, make_feed
from tests.integration.quota.recording import FakeRecord, RecordingConsumer

pytestmark = pytest.mark.integration


async def _snapshot(engine: Any) -> dict[str, Any]:
    async with engine.connect() as c:
        return {
            "tallies": (await c.execute(select(tallies).order_by(*tallies.primary_key.columns))).all(),
            "candidates": (
                await c.execute(select(candidates.c.candidate_id, candidates.c.version, candidates.c.state))
            ).all(),
            "processed": await c.scalar(select(func.count()).select_from(processed)),
            "outbox": await c.scalar(select(func.count()).select_from(outbox)),
            "rejections": await c.scalar(select(func.count()).select_from(rejections)),
        }


async def test_a_redelivered_batch_changes_nothing(tmp_path: Path) -> None:
    feed = make_feed(60, branches=8, seed=7)
    records = [FakeRecord(n % 3, n // 3, orjson.dumps(e)) for n, e in enumerate(feed.candidates)]
    engine = make_engine(await fresh_database_url(tmp_path))
    try:
        await migrate(engine, "quota")
        cache = StateCache(Settings().quota_state_cache)
        plumbing = BatchConsumer(
            ConsumerSpec("quota", "ketnap-quota", (CANDIDATE_EVENTS,)),
            lambda batch: handle_candidates(batch, cache=cache),
            engine,
            Settings(service="quota"),
        )
        kafka = RecordingConsumer()
        await plumbing.consume(kafka, records)  # type: ignore[arg-type]
        first = await _snapshot(engine)
        assert first["tallies"]
        assert first["processed"] == len(records)
        assert kafka.commits
        assert not kafka.seeks

        redelivered = REDELIVERIES.labels("quota")._value.get()
        await plumbing.consume(kafka, records[: len(records) // 2])  # type: ignore[arg-type]
        await plumbing.consume(kafka, records)  # type: ignore[arg-type]
        assert await _snapshot(engine) == first
        assert REDELIVERIES.labels("quota")._value.get() - redelivered == len(records) * 3 // 2

        # Without the position fence (lost, or another group), the processed ids still hold.
        async with engine.begin() as c:
            await c.execute(delete(consumer_offsets))
        cold = BatchConsumer(
            ConsumerSpec("quota", "ketnap-quota", (CANDIDATE_EVENTS,)),
            lambda batch: handle_candidates(batch, cache=StateCache(0)),
            engine,
            Settings(service="quota"),
        )
        await cold.consume(kafka, list(reversed(records)))  # type: ignore[arg-type]
        assert await _snapshot(engine) == first

        model = expected_tallies(feed.candidates)
        async with engine.connect() as c:
            rows = (
                await c.execute(text("SELECT branch_id, day, metric, category, value FROM quota_tallies"))
            ).all()
        stored = {(r[0], _day(r[1]), r[2], r[3]): r[4] for r in rows if r[4]}
        assert stored == model
    finally:
        await engine.dispose()


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def test_tally_changes_on_the_topic_add_up_to_the_tallies(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    feed = make_feed(300, branches=30, seed=11)
    model = expected_tallies(feed.candidates)
    async with running_quota(
        broker.bootstrap, await fresh_database_url(tmp_path), consumer_batch=200
    ) as quota:
        await quota.reference(feed.reference)
        await quota.send(feed.candidates)

        async def settled() -> dict | None:
            totals: dict[tuple[str, str], int] = defaultdict(int)
            for (branch, _, metric, category), n in model.items():
                if category == "all":
                    totals[(branch, metric)] += n
            for branch in {b for b, _ in totals}:
                status, _body = await quota.get(f"/v1/branches/{branch}/tallies", year=2024)
                if status != 200:
                    return None
            return dict(totals)

        await eventually(settled)
        engine = make_engine(quota.database_url)
        try:

            async def stored_equals_model() -> dict | None:
                async with engine.connect() as c:
                    rows = (await c.execute(select(tallies))).all()
                stored = {(r.branch_id, _day(r.day), r.metric, r.category): r.value for r in rows if r.value}
                return stored if stored == model else None

            stored = await eventually(stored_equals_model)

            async def relayed() -> bool:
                async with engine.connect() as c:
                    return await c.scalar(select(func.count()).select_from(outbox)) == 0

            await eventually(relayed)
        finally:
            await engine.dispose()

    latest: dict[tuple[str, str, str, str], TallyChange] = {}
    summed: dict[tuple[str, str, str, str], int] = defaultdict(int)
    seen: set[tuple[Any, ...]] = set()
    for record in await read_topic(broker.bootstrap, TALLY_CHANGES, idle_ms=1000):
        change = TallyChange.model_validate_json(record.value)
        assert record.key == change.branch_id.encode()
        assert record.partition == DefaultPartitioner()(record.key, list(range(12)), [])  # as any producer
        assert dict(record.headers)["message-id"].startswith(b"quota:")
        key = (change.branch_id, change.date.isoformat(), change.metric, change.category)
        if (key, change.version) in seen:
            continue  # at least once: a repeated version is the same change
        seen.add((key, change.version))
        summed[key] += change.delta
        if key not in latest or change.version > latest[key].version:
            latest[key] = change
    expected = {(b, d.isoformat(), m, c): n for (b, d, m, c), n in stored.items()}
    assert {k: v.value for k, v in latest.items() if v.value} == expected
    assert {k: v for k, v in summed.items() if v} == expected


async def test_a_defect_on_one_candidate_rejects_its_events_and_blocks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.quota import handlers

    feed = make_feed(20, branches=4, seed=3)
    victim = feed.candidates[0]["subject"]
    real = handlers.apply_all

    def flaky(state: Any, events: Any) -> Any:
        if events[0].candidate_id == victim:
            raise RuntimeError("boom")
        return real(state, events)

    monkeypatch.setattr(handlers, "apply_all", flaky)
    records = [FakeRecord(0, n, orjson.dumps(e)) for n, e in enumerate(feed.candidates)]
    engine = make_engine(await fresh_database_url(tmp_path))
    try:
        await migrate(engine, "quota")
        plumbing = BatchConsumer(
            ConsumerSpec("quota", "ketnap-quota", (CANDIDATE_EVENTS,)),
            lambda batch: handlers.handle_candidates(batch, cache=StateCache(Settings().quota_state_cache)),
            engine,
            Settings(service="quota"),
        )
        await plumbing.consume(RecordingConsumer(), records)  # type: ignore[arg-type]
        mine = [e["id"] for e in feed.candidates if e["subject"] == victim]
        async with engine.connect() as c:
            codes = dict((await c.execute(select(rejections.c.event_id, rejections.c.code))).all())
            kept = {r[0] for r in await c.execute(select(processed.c.event_id))}
        assert {i: codes.get(i) for i in mine} == dict.fromkeys(mine, "processing_error")
        assert kept == {e["id"] for e in feed.candidates} - set(mine)  # replayable after a fix
        others = [e for e in feed.candidates if e["subject"] != victim]
        async with engine.connect() as c:
            rows = (await c.execute(select(tallies))).all()
        assert {(r.branch_id, _day(r.day), r.metric, r.category): r.value for r in rows if r.value} == (
            expected_tallies(others)
        )
    finally:
        await engine.dispose()
