"""``ketnap intake`` with two worker processes on one port and one PostgreSQL database.

Between the workers, as between replicas, the database decides: an id raced to both
is accepted at least once and otherwise a duplicate, never lost nor rejected, and
other content under a known id is an ``id_conflict``. ``/metrics`` counts every
worker's requests whichever answers; the workers stop with their supervisor, and
die with it when it is killed (the port is free again, and the next supervisor removes
the metrics directory the killed one left).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.intake.workers import METRICS_DIR_PREFIX, sweep_metrics_dirs
from shared.embedded_broker import free_port
from tests.conftest import TEST_DATABASE_URL, eventually
from tests.integration.intake.conftest import NATIONAL, TOKENS, branch, candidate

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(TEST_DATABASE_URL is None, reason="SQLite always runs one intake process"),
]

REQUESTS = 24
TEMP = Path(tempfile.gettempdir())


@dataclass
class Supervised:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[psutil.Process]:
        children = psutil.Process(self.process.pid).children()
        return [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]


def _start(kafka_bootstrap: str, database_url: str, log: Path) -> Supervised:
    port = free_port()
    env = {
        **os.environ,
        "KETNAP_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "KETNAP_DATABASE_URL": database_url,
        "KETNAP_HTTP_PORT": str(port),
        "KETNAP_TOKENS": json.dumps(TOKENS),
        "KETNAP_INTAKE_WORKERS": "2",
        "KETNAP_LOG_LEVEL": "WARNING",
        "KETNAP_SHUTDOWN_GRACE_S": "2",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ketnap", "intake"], env=env, stdout=out, stderr=out
        )
    return Supervised(process, port)


@pytest.fixture
async def two_workers(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> AsyncIterator[Supervised]:
    served = _start(kafka_bootstrap, database_url, tmp_path / "intake.log")
    process = served.process
    try:
        await eventually(lambda: _both_ready(served), within=180)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def _both_ready(served: Supervised) -> bool:
    assert served.process.poll() is None, "the intake exited"
    if len(served.workers()) != 2:
        return False
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{served.url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _post(url: str, events: object) -> list[str]:
    """On a new connection each time, so that both workers get requests."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        answer = await client.post("/v1/events", json=events, headers={"Authorization": f"Bearer {NATIONAL}"})
    assert answer.status_code in (200, 202), answer.text
    results = answer.json()["results"]
    return [r["error"]["code"] if r["status"] == "rejected" else r["status"] for r in results]


async def _requests_counted(url: str) -> float:
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"{url}/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(body)}
    samples = families["ketnap_intake_request_seconds"].samples
    return sum(s.value for s in samples if s.name.endswith("_count"))


async def test_two_workers_decide_together_and_count_together(two_workers: Supervised) -> None:
    url = two_workers.url
    reg = branch()
    assert await _post(url, reg) == ["accepted"]
    branch_id = reg["data"]["branch_id"]
    batches = [[candidate("sourced", branch_id) for _ in range(20)] for _ in range(REQUESTS // 2)]
    raced = await asyncio.gather(*(_post(url, b) for b in batches for _copy in range(2)))
    for first, second in zip(raced[::2], raced[1::2], strict=True):
        for pair in zip(first, second, strict=True):
            assert "accepted" in pair
            assert set(pair) <= {"accepted", "duplicate"}
    every = [e for b in batches for e in b]
    assert set(await _post(url, every)) == {"duplicate"}
    assert await _post(url, {**every[0], "subject": "cand-other"}) == ["id_conflict"]
    sent = 1 + REQUESTS + 2
    assert [await _requests_counted(url) for _ in range(4)] == [sent] * 4

    two_workers.process.send_signal(signal.SIGTERM)
    workers = two_workers.workers()
    assert two_workers.process.wait(60) == 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


async def test_a_killed_supervisor_takes_its_workers_and_frees_the_port(two_workers: Supervised) -> None:
    workers = two_workers.workers()
    two_workers.process.kill()
    two_workers.process.wait()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive
    assert len(gone) == 2
    with socket.socket() as again:
        again.bind(("127.0.0.1", two_workers.port))
    _left_and_swept(two_workers.process.pid)


def _left_and_swept(supervisor: int) -> None:
    """What a killed supervisor could not remove, the next supervisor on this host does."""
    left = list(TEMP.glob(f"{METRICS_DIR_PREFIX}{supervisor}-*"))
    assert len(left) == 1
    assert left[0] in sweep_metrics_dirs(TEMP)
    assert not left[0].exists()
