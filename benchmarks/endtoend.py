"""End to end: a generated national year from HTTP to final rollups, freshness at a fixed rate, memory.

- ``national_year_s``: a year from ``ketnap generate`` (``KETNAP_BENCH_SCALE``, default 1.0
  in a full run: the whole country; 0.005 in a quick run) posted to the intake in 5,000-event
  batches until the reporting service's national admissions equal the generator's count
  (``e2e_admissions_final_s``) and then every change is folded (no consumer lag, empty
  outboxes, no batch for 1.5 s, read from the services' metrics): the final rollups.
  ``e2e_events_per_s`` is the same run as a rate. At a scale below 1 the figure is named
  ``year_at_scale_s``, never passed off as a national year. The year is timed once per
  module run (several minutes at full size), the freshness at every repeat.
- ``e2e_freshness_p99_ms``: once the pipeline has drained (the year loaded), events posted at 1,000 events/s
  (one request of 50 every 50 ms); for each, from the intake's answer to the first reporting
  answer (polled every 20 ms) that includes it.
- ``e2e_quota_cache_hit_pct``: of the stored candidates the quota looked up over the
  year, the share found in its state cache (``KETNAP_QUOTA_STATE_CACHE``) rather than
  read and decoded from the database.
- ``rss_mb_<service>``: peak resident memory of each service (its processes together)
  during the year.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psutil
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from benchmarks.common import broker, fresh_database, percentile
from benchmarks.vacuum import AutovacuumStandIn
from ketnap.generate import GeneratorConfig, generate
from shared.db import is_sqlite
from shared.embedded_broker import EmbeddedBroker, free_port

SERVICES = ("intake", "quota", "reporting")
TOKEN = "bench-national-token-0123456789abcdef"
YEAR = 2024
FRESH_BRANCH = "B-BENCH-FRESH"
FRESH_COMMUNE = "C00001"
POLL_S = 2.0  # a dashboard's refresh: the national answer is itself work for the reporting side
DRAIN_TIMEOUT_S = 3600  # a national year took ~25 min at 07:48 on 2026-11-22 (from a tenth)


@dataclass
class Running:
    urls: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    bootstrap: str
    maintenance: AutovacuumStandIn | None = None


PIPELINE_METRICS = (
    "ketnap_consumer_lag",
    "ketnap_outbox_backlog",
    "ketnap_batch_seconds_count",
    "ketnap_rollups_dirty",  # the feed's documents to build: it gives way to a replay's folds
)
BATCHES = PIPELINE_METRICS.index("ketnap_batch_seconds_count")


async def pipeline_state(client: httpx.AsyncClient, running: Running) -> tuple[float, ...]:
    """Per service: records behind (its consumer groups' lag gauges), outbox rows not yet
    published, batches done. Read from the services' own metrics: Tansu's ListOffsets
    answers are not end offsets, so a lag read from the broker would be wrong."""
    state: list[float] = []
    for service in ("quota", "reporting"):
        totals = dict.fromkeys(PIPELINE_METRICS, 0.0)
        for sample in await metric_samples(client, running.urls[service]):
            if sample.name in totals:
                totals[sample.name] += sample.value
        state += totals.values()
    return tuple(state)


async def metric_samples(client: httpx.AsyncClient, url: str) -> list[Sample]:
    """Every sample of a service's ``/metrics`` answer."""
    text = (await client.get(f"{url}/metrics")).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


async def quota_cache_lookups(client: httpx.AsyncClient, running: Running) -> dict[str, float]:
    """The quota's state cache lookups so far, by result (``hit``, ``miss``), from its metrics."""
    found = {"hit": 0.0, "miss": 0.0}
    for sample in await metric_samples(client, running.urls["quota"]):
        if sample.name == "ketnap_quota_state_cache_lookups_total" and sample.labels["result"] in found:
            found[sample.labels["result"]] += sample.value
    return found


async def drained(client: httpx.AsyncClient, running: Running) -> float:
    """Waits until nothing is behind, no outbox holds rows, the rollups feed has no document
    left to build and no batch ran for 1.5 s; returns
    when it first looked so (perf_counter). A lag gauge is set after each batch, so a quiet
    spell (no new batch) is what says the last relayed changes were folded too."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    quiet_since, last = None, None
    while True:
        state = await pipeline_state(client, running)
        idle = all(v == 0 for i, v in enumerate(state) if i % len(PIPELINE_METRICS) != BATCHES)
        if idle and state == last and quiet_since is not None:
            if time.perf_counter() - quiet_since >= 1.5:
                return quiet_since
        else:
            quiet_since = time.perf_counter() if idle else None
        last = state
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pipeline did not drain: {state}")
        await asyncio.sleep(0.25)


@contextmanager
def services(running_broker: EmbeddedBroker, workdir: Path) -> Iterator[Running]:
    """The three services as processes, each on its own fresh database."""
    with ExitStack() as stack:
        urls, processes, databases = {}, {}, []
        for name in SERVICES:
            port = free_port()
            databases.append(stack.enter_context(fresh_database(workdir, name)))
            env = {
                **os.environ,
                "KETNAP_KAFKA_BOOTSTRAP": running_broker.bootstrap,
                "KETNAP_DATABASE_URL": databases[-1],
                "KETNAP_HTTP_PORT": str(port),
                "KETNAP_TOKENS": orjson.dumps({TOKEN: ["*"]}).decode(),
                "KETNAP_LOG_LEVEL": "WARNING",
                "KETNAP_SHUTDOWN_GRACE_S": "2",  # measured already: no need to drain at the end
            }
            log = stack.enter_context(open(workdir / f"{name}.log", "wb"))
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "ketnap", name], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            urls[name] = f"http://127.0.0.1:{port}"
        maintenance = None
        if not any(is_sqlite(url) for url in databases):  # SQLite has no vacuum to stand in for
            # Entered after the databases, so it stops before they are dropped.
            maintenance = stack.enter_context(AutovacuumStandIn(databases))
        try:
            _wait_ready(urls)
            yield Running(urls, processes, running_broker.bootstrap, maintenance)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:  # measured already; a slow stop is not a figure
                    process.kill()
                    process.wait()


def _wait_ready(urls: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for url in urls.values():
        while not _ready(url):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not ready")
            time.sleep(0.2)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class MemoryWatch:
    """Samples the resident memory of the service processes; keeps each one's peak."""

    def __init__(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        self.processes = {name: psutil.Process(p.pid) for name, p in processes.items()}
        self.peak_mb = dict.fromkeys(processes, 0.0)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name, process in self.processes.items():
                self.peak_mb[name] = max(self.peak_mb[name], _rss_mb(process))
            await asyncio.sleep(0.5)


def _rss_mb(process: psutil.Process) -> float:
    """A service's resident memory: the process and its children (the intake's workers)."""
    total = 0
    for each in (process, *process.children(recursive=True)):
        try:
            total += each.memory_info().rss
        except psutil.Error:  # a child that has just ended holds nothing more
            continue
    return total / 2**20


async def post(client: httpx.AsyncClient, url: str, events: list[dict[str, object]]) -> httpx.Response:
    body = b"\n".join(orjson.dumps(e) for e in events)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    while True:
        try:
            response = await client.post(f"{url}/v1/events", content=body, headers=headers)
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if response.status_code != 503:
            response.raise_for_status()
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


async def rollup_value(client: httpx.AsyncClient, url: str, unit: str, metric: str) -> int:
    response = await client.get(f"{url}/v1/rollups/{unit}", params={"period": str(YEAR), "metric": metric})
    return int(response.json().get("value", 0)) if response.status_code == 200 else -1


async def national_year(running: Running, scale: float) -> dict[str, float]:
    config = GeneratorConfig(
        now=datetime(YEAR + 1, 1, 1, tzinfo=UTC),
        seed=7,
        scale=scale,
        first_year=YEAR,
        last_year=YEAR,
        mess=False,
    )
    events, expected = [], 0
    for item in generate(config):
        events.append(item.event)
        if (
            item.counts
            and item.event["type"] == "vn.ketnap.candidate.admitted"
            and item.event["time"][:4] == str(YEAR)
        ):
            expected += 1
    watch, stop = MemoryWatch(running.processes), asyncio.Event()
    watcher = asyncio.create_task(watch.run(stop))
    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        # Branches and targets first, as a province registers its branches before their candidates.
        reference = [e for e in events if not str(e["type"]).startswith("vn.ketnap.candidate.")]
        candidates = [e for e in events if str(e["type"]).startswith("vn.ketnap.candidate.")]
        for offset in range(0, len(reference), 5000):
            await post(client, running.urls["intake"], reference[offset : offset + 5000])
        queue = iter(range(0, len(candidates), 5000))

        async def worker() -> None:
            for offset in queue:
                await post(client, running.urls["intake"], candidates[offset : offset + 5000])

        await asyncio.gather(*(worker() for _ in range(3)))
        posted_s = time.perf_counter() - started
        print(
            f"  posted {len(events)} events in {posted_s:.1f}s; waiting for {expected} admissions", flush=True
        )
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        last_print = time.monotonic()
        while (value := await rollup_value(client, running.urls["reporting"], "VN", "admitted")) != expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"national admissions stuck at {value}, expected {expected}")
            if time.monotonic() - last_print >= 15:
                last_print = time.monotonic()
                print(f"  national admissions {value}/{expected}", flush=True)
            await asyncio.sleep(POLL_S)
        admitted_s = time.perf_counter() - started
        # Final rollups: every change folded, not only the admissions the check counts.
        total_s = await drained(client, running) - started
        cache = await quota_cache_lookups(client, running)
    stop.set()
    await watcher
    name = "national_year_s" if scale >= 1 else "year_at_scale_s"
    figures = {
        name: total_s,
        "e2e_events": float(len(events)),
        "e2e_events_per_s": len(events) / total_s,
        "e2e_intake_accept_s": posted_s,
        "e2e_admissions_final_s": admitted_s,
    }
    figures |= {f"rss_mb_{service}": mb for service, mb in watch.peak_mb.items()}
    if sum(cache.values()):
        figures["e2e_quota_cache_hit_pct"] = 100 * cache["hit"] / sum(cache.values())
    if running.maintenance is not None:
        figures |= {
            "e2e_autovacuum_stand_in": float(running.maintenance.active),
            "e2e_stand_in_vacuums": float(running.maintenance.vacuums),
            "e2e_stand_in_analyses": float(running.maintenance.analyses),
        }
    return figures


def _fresh_event(n: int, kind: str, when: str, data: dict[str, object]) -> dict[str, object]:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": f"bench-fresh-{kind}-{n}-{time.time_ns()}",
        "source": "/bench",
        "type": f"vn.ketnap.{kind}",
        "time": when,
        "data": data,
    }
    if kind.startswith("candidate."):
        event["subject"] = f"cand-bench-{n}-{time.time_ns()}"
    return event


async def freshness(running: Running, seconds: float, rate: int = 1000) -> dict[str, float]:
    """Sourced events on one branch at ``rate``/s; each one's delay until the commune's rollup counts it."""
    when = f"{YEAR}-06-01T09:00:00+07:00"
    intake, reporting = running.urls["intake"], running.urls["reporting"]
    async with httpx.AsyncClient(timeout=30) as client:
        await drained(client, running)  # freshness, not the backlog of what ran before
        await post(
            client,
            intake,
            [
                _fresh_event(
                    0,
                    "org.branch_registered",
                    when,
                    {
                        "branch_id": FRESH_BRANCH,
                        "name": "Chi bộ đo độ tươi",
                        "kind": "other",
                        "parents": {"legacy": FRESH_COMMUNE},
                    },
                )
            ],
        )
        base = await _settled_value(client, reporting)
        accepted_at: list[float] = []
        seen_at: list[float] = []
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set() or len(seen_at) < len(accepted_at):
                value = await rollup_value(client, reporting, FRESH_COMMUNE, "sourced") - base
                now = time.perf_counter()
                seen_at.extend(itertools.repeat(now, max(0, value - len(seen_at))))
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        per_tick = max(1, int(rate * 0.05))  # one request every 50 ms
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < seconds:
            batch = [
                _fresh_event(
                    n + i,
                    "candidate.sourced",
                    when,
                    {
                        "branch_id": FRESH_BRANCH,
                        "profile": {"birth_year": 2000, "sex": "female", "categories": []},
                    },
                )
                for i in range(per_tick)
            ]
            await post(client, intake, batch)
            accepted_at.extend(itertools.repeat(time.perf_counter(), per_tick))
            n += per_tick
            await asyncio.sleep(max(0.0, started + (n / rate) - time.perf_counter()))
        done.set()
        await asyncio.wait_for(watcher, 120)
    delays = [(seen - accepted) * 1000 for seen, accepted in zip(seen_at, accepted_at, strict=False)]
    return {"e2e_freshness_p50_ms": percentile(delays, 50), "e2e_freshness_p99_ms": percentile(delays, 99)}


async def _settled_value(client: httpx.AsyncClient, url: str) -> int:
    value = await rollup_value(client, url, FRESH_COMMUNE, "sourced")
    while value < 0:
        await asyncio.sleep(0.2)
        value = await rollup_value(client, url, FRESH_COMMUNE, "sourced")
    return value


def run_repeated(quick: bool, repeats: int) -> Generator[dict[str, float]]:
    """One broker and one set of services for every run: the year once (at ``KETNAP_BENCH_SCALE``),
    then the freshness at each run, on the drained pipeline with the year loaded. Starting and
    draining three services per run took most of a quick module; a second national year on the
    same services would only be duplicates, and a first one takes several minutes."""
    scale = float(os.environ.get("KETNAP_BENCH_SCALE", "0.005" if quick else "1.0"))
    with (
        tempfile.TemporaryDirectory() as tmp,
        broker() as running_broker,
        services(running_broker, Path(tmp)) as running,
    ):
        year = asyncio.run(national_year(running, scale))
        for i in range(repeats):
            figures = asyncio.run(freshness(running, 5 if quick else 20))
            yield (year | figures) if i == 0 else figures


def run(quick: bool) -> dict[str, float]:
    return next(run_repeated(quick, 1))


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
