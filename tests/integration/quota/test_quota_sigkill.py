"""``ketnap quota`` as a process, SIGKILLed again and again while events flow: tallies stay exact.

The service runs as a subprocess (``python -m ketnap quota``) on a private broker and a
fresh database. While the feed is being published it is SIGKILLed at random points
(10 times; 25 with ``KETNAP_RELIABILITY_FULL=1``, on 5x the events) and also dies on
its own between the database commit and the offset commit
(``KETNAP_FAULT_KILL_AFTER_COMMIT_PROB``; one run with probability 1 makes sure that
window is hit). At the end the tallies in the database equal the model (the pure
domain's replay of the feed), the redelivered records were seen and dropped, the
outbox is empty and the latest tally change on the topic for each key is the tally.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.quota.tables import outbox, tallies
from shared.consumer import FAULT_EXIT_CODE, FAULT_KILL_ENV, SESSION_TIMEOUT_ENV
from shared.db import make_engine
from shared.embedded_broker import EmbeddedBroker, free_port
from shared.messages import TallyChange
from shared.topics import TALLY_CHANGES
from tests.conftest import eventually, fresh_database_url
from tests.integration.quota.conftest import publish, read_topic
from tests.integration.quota.feed import chunks, expected_tallies, make_feed

FULL = os.environ.get("KETNAP_RELIABILITY_FULL") == "1"
pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(2400 if FULL else 300)]
CANDIDATES = 26_000 if FULL else 5_300  # about 3.8 events each: ~100,000 / ~20,000 events
KILLS = 25 if FULL else 10
ROOT = Path(__file__).resolve().parents[3]


class Service:
    """One ``ketnap quota`` process at a time, its logs kept per run."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.runs = env, logs, 0
        self.process: subprocess.Popen[bytes] | None = None
        self.fault_exits = 0

    def start(self, kill_probability: float) -> None:
        self.runs += 1
        env = {**self.env, FAULT_KILL_ENV: str(kill_probability)}
        log = (self.logs / f"run-{self.runs:02d}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ketnap", "quota"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def exited_on_its_own(self) -> bool:
        if self.process is None or self.process.poll() is None:
            return False
        self.fault_exits += self.process.returncode == FAULT_EXIT_CODE
        self.process = None
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.exited_on_its_own()
        self.process = None

    async def consuming(self) -> bool:
        """Has this run joined the candidate group (or died trying)?"""
        if self.process is None or self.process.poll() is not None:
            return True
        log = (self.logs / f"run-{self.runs:02d}.log").read_text(errors="replace")
        return '"group": "ketnap-quota", "partitions"' in log

    def log_lines(self, needle: str) -> int:
        return sum(p.read_text(errors="replace").count(needle) for p in self.logs.glob("run-*.log"))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Service({}, logs)
    yield running
    running.kill()


async def _tallies(url: str) -> dict[tuple[Any, ...], int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(tallies))).all()
    finally:
        await engine.dispose()
    return {(r.branch_id, _day(r.day), r.metric, r.category): r.value for r in rows if r.value}


async def _outbox_rows(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(outbox)) or 0)
    finally:
        await engine.dispose()


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def _ready(port: int) -> bool:
    async with httpx.AsyncClient() as client:
        try:
            return (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False


async def test_sigkilled_while_events_flow_tallies_stay_exact(
    broker: EmbeddedBroker, tmp_path: Path, service: Service
) -> None:
    feed = make_feed(CANDIDATES, branches=200, seed=5)
    rng = random.Random(5)
    events = feed.candidates + rng.sample(feed.candidates, len(feed.candidates) // 100)  # resent as is
    rng.shuffle(events)
    model = expected_tallies(events)
    url, port = await fresh_database_url(tmp_path), free_port()
    service.env = {
        **os.environ,
        "KETNAP_KAFKA_BOOTSTRAP": broker.bootstrap,
        "KETNAP_DATABASE_URL": url,
        "KETNAP_HTTP_PORT": str(port),
        "KETNAP_CONSUMER_BATCH": "500",
        "KETNAP_SHUTDOWN_GRACE_S": "2",
        SESSION_TIMEOUT_ENV: "1500",
    }
    await publish(broker.bootstrap, feed.reference, "ketnap.reference-events")

    async def feed_slowly() -> None:  # spread over the kill phase (~6 s per kill)
        parts = list(chunks(events, 500))
        for part in parts:
            await publish(broker.bootstrap, part)
            await asyncio.sleep(KILLS * 6.0 / len(parts))

    feeding = asyncio.create_task(feed_slowly())
    service.start(kill_probability=1.0)  # dies at its first commit: the window is hit for sure
    await eventually(lambda: asyncio.sleep(0.1, service.exited_on_its_own()), within=60)
    kills = 0
    while kills < KILLS:
        service.start(kill_probability=0.02)
        await eventually(service.consuming, within=60)
        await asyncio.sleep(rng.uniform(0.0, 1.5))  # a random point of its work
        if not service.exited_on_its_own():
            service.kill()
            kills += 1
    await feeding
    service.kill()
    service.start(kill_probability=0.0)
    await eventually(lambda: _ready(port), within=60)

    async def exact() -> dict | None:
        stored = await _tallies(url)
        return stored if stored == model else None

    stored = await eventually(exact, within=900 if FULL else 60)

    async def drained() -> bool:
        return await _outbox_rows(url) == 0

    await eventually(drained, within=300 if FULL else 60)
    assert service.fault_exits >= 1
    assert service.log_lines("redelivered records skipped") >= 1

    latest: dict[tuple[str, date, str, str], TallyChange] = {}
    for record in await read_topic(broker.bootstrap, TALLY_CHANGES, idle_ms=1500):
        change = TallyChange.model_validate_json(record.value)
        key = (change.branch_id, change.date, change.metric, change.category)
        if key not in latest or change.version > latest[key].version:
            latest[key] = change
    assert {k: c.value for k, c in latest.items() if c.value} == stored
