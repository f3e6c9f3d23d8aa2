"""Intake: accepted events/s with 5,000-event batches, and single-event latency at 200 req/s.

The intake runs as its own process (``python -m ketnap intake``, uvicorn + uvloop), on
the embedded Tansu broker and a fresh PostgreSQL database (SQLite when there is none),
exactly as ``ketnap up`` runs it, with ``KETNAP_INTAKE_WORKERS`` worker processes (the
setting's default unless the environment sets it; always one on SQLite); this process is
only the HTTP client, over loopback (a minimal keep-alive HTTP/1.1 client, so that the
client's CPU does not count against the service on a small machine).

- ``intake_events_per_s``: accepted events per second, from the first request sent to
  the last answer, NDJSON batches of 5,000 new candidate events, ``IN_FLIGHT`` requests in
  flight; every answer is ``202`` with everything accepted (HTTP in -> broker ack ->
  database commit -> answer), or the run fails.
- ``intake_p50_ms`` / ``intake_p99_ms``: latency of single-event requests sent open
  loop at 200 req/s (a request leaves on schedule whether or not the previous one
  has been answered), measured from the scheduled send time to the answer.
- ``intake_processes``: the intake's serving processes (its workers, or itself).

``python -m benchmarks.intake [--quick]`` prints the figures; the harness calls ``run_repeated``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from benchmarks.common import broker, fresh_database, percentile
from shared.embedded_broker import free_port
from shared.orgtree import load_org_trees

TOKEN = "bench-national-token-0123456789abcdef"
BATCH = 5000
BRANCHES = 500
# Requests in flight in the throughput run, each on its connection. A connection stays with
# the worker that accepted it: with 3, all of them landed on one of 2 workers in about one
# run in four (14,300 against 26,000-32,000 events/s, 2026-12-06), so the figure measured
# the accept race; with 6 that is 1 in 32, and a provincial sender posting from several
# threads is what the intake is for.
IN_FLIGHT = 6


@contextmanager
def intake_process(bootstrap: str, database_url: str, log: Path) -> Iterator[tuple[str, int]]:
    """``ketnap intake`` in a child process; yields its base URL and its number of serving
    processes once every one of them has started."""
    port = free_port()
    env = {
        **os.environ,
        "KETNAP_KAFKA_BOOTSTRAP": bootstrap,
        "KETNAP_DATABASE_URL": database_url,
        "KETNAP_HTTP_PORT": str(port),
        "KETNAP_TOKENS": json.dumps({TOKEN: ["*"]}),
        "KETNAP_LOG_LEVEL": "WARNING",
        "KETNAP_SHUTDOWN_GRACE_S": "2",  # measured already: no need to drain at the end
    }
    with log.open("ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "ketnap", "intake"], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, child)
        yield url, _wait_started(child.pid)
    finally:
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_ready(url: str, child: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the intake exited with {child.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the intake did not become ready")


def _wait_started(pid: int, timeout: float = 120) -> int:
    """The serving processes, once their CPU has stayed idle for a second: the first worker
    ready answers ``/readyz`` while another may still be starting, and connections made
    then would all go to the first one."""
    supervisor = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    spent, idle_since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(_cpu_s(p) for p in (supervisor, *supervisor.children()))
        if total - spent > 0.02:
            spent, idle_since = total, time.monotonic()
        elif time.monotonic() - idle_since >= 1.0:
            workers = [c for c in supervisor.children() if "spawn_main" in " ".join(c.cmdline())]
            return len(workers) or 1
        time.sleep(0.2)
    raise TimeoutError("the intake's workers did not settle")


def _cpu_s(process: psutil.Process) -> float:
    try:
        user, system = process.cpu_times()[:2]
    except psutil.Error:  # a process that has just ended spends nothing more
        return 0.0
    return float(user + system)


class RawHttp:
    """A minimal keep-alive HTTP/1.1 client: a few dozen microseconds of CPU per request where
    httpx spends over a millisecond, so that on a small machine the client does not starve the
    service it measures. Enough for uvicorn's answers (always with Content-Length)."""

    def __init__(self, url: str, token: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.head = f"Host: {host}\r\nAuthorization: Bearer {token}\r\n".encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        """POST on an idle connection; one the server has closed meanwhile (uvicorn drops idle
        keep-alive connections after 5 s) is replaced and the request sent again: safe, the
        intake is idempotent."""
        if self.idle:
            reused = self.idle.pop()
            try:
                return await self._exchange(reused, path, body, content_type)
            except (ConnectionError, asyncio.IncompleteReadError, IndexError):
                reused[1].close()
        connection = await asyncio.open_connection(self.host, self.port)
        return await self._exchange(connection, path, body, content_type)

    async def _exchange(
        self,
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        path: str,
        body: bytes,
        content_type: str,
    ) -> tuple[int, bytes]:
        reader, writer = connection
        writer.write(
            b"POST %s HTTP/1.1\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (path.encode(), self.head, content_type.encode(), len(body))
            + body
        )
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = await reader.readexactly(length)
        self.idle.append(connection)
        return status, answer

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def _event(event_type: str, data: dict[str, Any], subject: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/deployments/bench",
        "type": f"vn.ketnap.{event_type}",
        "time": "2024-05-12T09:00:00+07:00",
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        doc["subject"] = subject
    return doc


def registrations() -> list[dict[str, Any]]:
    """Branches spread over the country (every 20th commune), in both trees."""
    trees = load_org_trees()
    communes = [u.id for u in trees.legacy.units("commune")][::20][:BRANCHES]
    return [
        _event(
            "org.branch_registered",
            {
                "branch_id": f"B-{commune}-bench",
                "name": "Chi bộ thôn 1",
                "kind": "residential",
                "parents": {"legacy": commune, "2025": trees.to_2025(commune) or None},
            },
        )
        for commune in communes
    ]


def candidate_event(n: int, branch_ids: list[str]) -> dict[str, Any]:
    subject = f"cand-{uuid.uuid4().hex[:12]}"
    branch_id = branch_ids[n % len(branch_ids)]
    if n % 2:
        return _event("candidate.admitted", {"branch_id": branch_id, "decision_no": f"{n}-QĐ/ĐU"}, subject)
    profile = {
        "birth_year": 1990 + n % 15,
        "sex": "female" if n % 3 else "male",
        "categories": ["youth_union"],
    }
    return _event("candidate.sourced", {"branch_id": branch_id, "profile": profile}, subject)


async def throughput(client: RawHttp, branch_ids: list[str], batches: int, in_flight: int) -> float:
    """Accepted events per second over ``batches`` NDJSON requests of 5,000 events."""
    bodies = asyncio.Queue[bytes]()
    for b in range(batches):
        lines = (orjson.dumps(candidate_event(b * BATCH + i, branch_ids)) for i in range(BATCH))
        bodies.put_nowait(b"\n".join(lines))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        while not bodies.empty():
            status, answer = await client.post("/v1/events", bodies.get_nowait(), "application/x-ndjson")
            if status != 202 or orjson.loads(answer)["accepted"] != BATCH:
                raise RuntimeError(f"batch not accepted: {status} {answer[:300]!r}")
            accepted += BATCH

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return accepted / (time.perf_counter() - started)


async def latency(client: RawHttp, branch_ids: list[str], rate: float, seconds: float) -> list[float]:
    """Milliseconds from each request's scheduled send time to its answer, open loop at ``rate``/s."""
    events = [orjson.dumps(candidate_event(i, branch_ids)) for i in range(int(rate * seconds))]
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    latencies: list[float] = []

    async def one(i: int, body: bytes) -> None:
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        status, answer = await client.post("/v1/events", body, "application/json")
        if status != 202:
            raise RuntimeError(f"event not accepted: {status} {answer[:300]!r}")
        latencies.append((loop.time() - scheduled) * 1000)

    await asyncio.gather(*(one(i, body) for i, body in enumerate(events)))
    return latencies


async def register(url: str) -> list[str]:
    """The benchmark's branches, registered once per intake: their ids."""
    client = RawHttp(url, TOKEN)
    try:
        regs = registrations()
        status, answer = await client.post("/v1/events", orjson.dumps(regs), "application/json")
        if status != 202 or orjson.loads(answer)["accepted"] != len(regs):
            raise RuntimeError(f"registrations not accepted: {answer[:300]!r}")
    finally:
        client.close()
    return [r["data"]["branch_id"] for r in regs]


async def measure(url: str, quick: bool, processes: int, branch_ids: list[str]) -> dict[str, float]:
    """One run's figures; every run sends new events (new ids), so none is a duplicate."""
    client = RawHttp(url, TOKEN)
    try:
        await throughput(client, branch_ids, batches=1, in_flight=1)  # warm-up: connections, plans
        per_s = await throughput(client, branch_ids, batches=12 if quick else 36, in_flight=IN_FLIGHT)
        await latency(client, branch_ids, rate=200, seconds=1)  # warm-up
        latencies = await latency(client, branch_ids, rate=200, seconds=3 if quick else 20)
    finally:
        client.close()
    return {
        "intake_events_per_s": per_s,
        "intake_p50_ms": percentile(latencies, 50),
        "intake_p99_ms": percentile(latencies, 99),
        "intake_processes": processes,
    }


def run_repeated(quick: bool, repeats: int) -> Generator[dict[str, float]]:
    """Every run on one intake (broker, database, processes started once, branches registered
    once): starting them cost more than a quick run's measuring."""
    with tempfile.TemporaryDirectory(prefix="ketnap-bench-intake-") as tmp:
        workdir = Path(tmp)
        with (
            broker() as running,
            fresh_database(workdir, "intake") as database_url,
            intake_process(running.bootstrap, database_url, workdir / "intake.log") as (url, processes),
        ):
            branch_ids = asyncio.run(register(url))
            for _ in range(repeats):
                yield asyncio.run(measure(url, quick, processes, branch_ids))


def run(quick: bool) -> dict[str, float]:
    runs = run_repeated(quick, 1)
    try:
        return next(runs)
    finally:
        runs.close()


if __name__ == "__main__":
    figures = run("--quick" in sys.argv[1:])
    for name, value in figures.items():
        print(f"{name:22s} {value:12,.2f}")
