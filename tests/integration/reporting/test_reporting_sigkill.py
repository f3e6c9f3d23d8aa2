"""The reporting service as a process, SIGKILLed while tally changes flow: the rollups still equal the model.

`python -m ketnap reporting` is started and killed (SIGKILL, and now and then the
consumer's own fault hook between the database commit and the offset commit) ten
times while 20,000 tally changes flow, with repeated and stale versions and late
registrations among them. After the last restart every rollup asked equals the
pure domain's `RollupIndex` fed the same input. ``KETNAP_RELIABILITY_FULL=1`` runs
a bigger variant (100,000 changes, 25 kills).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.reporting.domain import RollupIndex, parse_period
from shared.consumer import FAULT_KILL_ENV, SESSION_TIMEOUT_ENV
from shared.embedded_broker import EmbeddedBroker, free_port
from shared.orgtree import load_org_trees
from shared.topics import REFERENCE_EVENTS, TALLY_CHANGES
from tests.conftest import eventually
from tests.integration.reporting.conftest import produce
from tests.integration.reporting.feed import (
    Ledger,
    Tally,
    branch_registered,
    encode_change,
    encode_event,
    model,
)

pytestmark = pytest.mark.integration

FULL = os.environ.get("KETNAP_RELIABILITY_FULL") == "1"
CHANGES, KILLS = (100_000, 25) if FULL else (20_000, 10)
ROOT = Path(__file__).resolve().parents[3]
COMMUNES = ("C06901", "C06895", "C06898", "C02680", "C02683")


def scenario(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Tally]]:
    """Registrations on time, registrations late, and changes with repeats and stale versions."""
    trees = load_org_trees()
    branches = [f"B-{c}-{i:02d}" for c in COMMUNES for i in range(8)]
    events = {
        b: branch_registered(b, b[2:8], trees.to_2025(b[2:8]) if rng.random() < 0.5 else None)
        for b in branches
    }
    late = set(rng.sample(branches, 8))
    ledger, changes = Ledger(), list[Tally]()
    metrics, categories = ("sourced", "admitted", "confirmed"), ("all", "female", "ethnic_minority")
    while len(changes) < CHANGES:
        day = date(2024, 1, 1) + timedelta(days=rng.randrange(600))
        change = ledger.add(rng.choice(branches), day, rng.choice(metrics), rng.choice(categories))
        changes.append(change)
        if rng.random() < 0.05:
            changes.append(change)  # repeated
        if rng.random() < 0.03 and change.version > 1:
            changes.append(
                Tally(change.branch_id, day, change.metric, change.category, 0, change.version - 1)
            )
    on_time = [events[b] for b in branches if b not in late]
    return on_time, [events[b] for b in sorted(late)], changes


class Service:
    """`python -m ketnap reporting` with its environment; started, killed and restarted."""

    def __init__(self, bootstrap: str, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "KETNAP_KAFKA_BOOTSTRAP": bootstrap,
            "KETNAP_DATABASE_URL": database_url,
            "KETNAP_HTTP_PORT": str(self.port),
            "KETNAP_ROLLUP_COALESCE_S": "0.5",
            # After each restart the backlog comes as one batch, and a kill 0.2-1 s in throws
            # it away: with the default 20,000 the run took 223 s against 164 s (SQLite,
            # loaded), near its limit. 5,000 keeps several commits between two kills.
            "KETNAP_REPORTING_BATCH": "5000",
            SESSION_TIMEOUT_ENV: "1500",
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, fault_probability: float = 0.0) -> None:
        env = {**self.env, FAULT_KILL_ENV: str(fault_probability)}
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ketnap", "reporting"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    async def ready(self, client: httpx.AsyncClient) -> bool | None:
        if self.process is not None and self.process.poll() is not None:
            return True  # died by the fault hook: the caller restarts it
        try:
            response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
        except httpx.HTTPError:
            return None
        return True if response.status_code == 200 else None


async def feed(
    bootstrap: str, on_time: list[dict[str, Any]], late: list[dict[str, Any]], changes: list[Tally]
) -> None:
    await produce(bootstrap, REFERENCE_EVENTS, [encode_event(e) for e in on_time])
    chunk = max(1, len(changes) // 40)
    for start in range(0, len(changes), chunk):
        await produce(bootstrap, TALLY_CHANGES, [encode_change(c) for c in changes[start : start + chunk]])
        if start // chunk == 25:
            await produce(bootstrap, REFERENCE_EVENTS, [encode_event(e) for e in late])
        await asyncio.sleep(0.15)


def questions(index: RollupIndex) -> list[tuple[str, str, str, str, str]]:
    """(tree, unit, period, metric, category) to compare: every unit above the branches, several periods."""
    trees = load_org_trees()
    units = {("legacy", "VN"), ("2025", "VN")}
    for commune in COMMUNES:
        units |= {("legacy", commune), *(("legacy", u.id) for u in trees.legacy.ancestors(commune))}
        new = trees.to_2025(commune)
        if new is not None:
            units |= {("2025", new), *(("2025", u.id) for u in trees.v2025.ancestors(new))}
    periods = ("2024", "2025", "2024-05", "2024-03-15..2025-02-10", "2024..2025", "2025-Q3")
    asked = [("admitted", "all"), ("sourced", "female"), ("confirmed", "ethnic_minority")]
    return [(t, u, p, m, c) for t, u in sorted(units) for p in periods for m, c in asked]


async def differences(client: httpx.AsyncClient, port: int, index: RollupIndex) -> list[str]:
    found = []
    for tree, unit, period, metric, category in questions(index):
        response = await client.get(
            f"http://127.0.0.1:{port}/v1/rollups/{unit}",
            params={"period": period, "tree": tree, "metric": metric, "category": category},
        )
        body = response.json()
        expected = index.report(tree, unit, parse_period(period), metric, category)  # type: ignore[arg-type]
        got = (body["value"], body["unmapped"], [(c["id"], c["value"]) for c in body["children"]],
               (body["reporting"]["branches"], body["reporting"]["branches_with_events"]))  # fmt: skip
        want = (expected.value, expected.unmapped, [(c.id, c.value) for c in expected.children],
                (expected.reporting.branches, expected.reporting.branches_with_events))  # fmt: skip
        if got != want:
            found.append(f"{tree} {unit} {period} {metric}/{category}: {got[:2]} != {want[:2]}")
    return found


async def test_sigkilled_service_ends_equal_to_the_model(tmp_path: Path, database_url: str) -> None:
    rng = random.Random(20261122)
    on_time, late, changes = scenario(rng)
    index = model([*on_time, *late], changes)
    with EmbeddedBroker() as broker:
        service = Service(broker.bootstrap, database_url, tmp_path / "reporting.log")
        flowing = asyncio.create_task(feed(broker.bootstrap, on_time, late, changes))
        async with httpx.AsyncClient(timeout=10) as client:
            try:
                for kill in range(KILLS):
                    service.start(fault_probability=0.05 if kill % 3 == 2 else 0.0)
                    await eventually(lambda: service.ready(client), within=60)
                    await asyncio.sleep(rng.uniform(0.2, 1.0))
                    service.kill()
                await flowing
                service.start()
                await eventually(lambda: service.ready(client), within=60)

                async def settled() -> bool | None:
                    return True if not await differences(client, service.port, index) else None

                try:
                    await eventually(settled, within=60)
                except AssertionError:
                    pytest.fail("\n".join((await differences(client, service.port, index))[:10]))
            finally:
                flowing.cancel()
                service.kill()
