"""The I/O side of the reliability campaign: a cluster of real processes, a retrying client, probes.

``Cluster`` runs a private Tansu broker and each service as ``python -m ketnap
<service>`` subprocesses (several replicas of one service share its database), each
service on its own fresh database. It can kill (SIGKILL), stop (SIGTERM), freeze
(SIGSTOP) and restart any process; a supervisor restarts what dies, as ``ketnap up``
would, unless a scenario keeps it down. A sampler scrapes every live process's
``/metrics`` twice a second: the largest consumer lag seen and the freshness
histograms (kept per process, so a killed process's figures are not lost).

``Client`` posts events as a provincial deployment with retries: a connection error
or a ``503`` is retried with the same body (same ids, so a retry is idempotent), and
every id's final answer goes in its ``Ledger``.

Quiescence (``Cluster.settle``) is read from the services' own databases: every
consumed partition's stored position has reached the broker's end offset and every
outbox is empty, twice in a row. Expected figures come from ``tests.reliability.model``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from shared.embedded_broker import EmbeddedBroker, free_port
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS, REJECTED, TALLY_CHANGES, TOPICS
from tests.reliability.model import (
    NATIONAL_TOKEN,
    Discrepancy,
    Event,
    TallyKey,
    World,
    YearKey,
    by_province,
    by_year,
    compare_year_tallies,
    expected_tallies,
    province_token,
    unit_totals,
)

T = TypeVar("T")
FULL = os.environ.get("KETNAP_RELIABILITY_FULL") == "1"
SERVICES = ("intake", "quota", "reporting")
CONSUMES = {"quota": (CANDIDATE_EVENTS, REFERENCE_EVENTS), "reporting": (TALLY_CHANGES, REFERENCE_EVENTS)}
SESSION_TIMEOUT_MS = "3000"  # Tansu completes a rejoin only after about a session timeout
READY_TIMEOUT_S = 90.0


def scaled(reduced: T, full: T) -> T:
    """The full size with ``KETNAP_RELIABILITY_FULL=1`` (make test-reliability), else the reduced one."""
    return full if FULL else reduced


# -- the broker -------------------------------------------------------------------------------


class ScenarioBroker(EmbeddedBroker):
    """The embedded broker, with the partition count of some topics changed before they are created."""

    def __init__(self, log_path: Path, partitions: Mapping[str, int] | None = None) -> None:
        super().__init__(None, log_path)
        self.partitions = dict(partitions or {})

    def _wait_listening(self, timeout: float) -> None:
        super()._wait_listening(timeout)
        if self.partitions:  # created first; the default creation then leaves them as they are
            _in_new_loop(self._create_custom())

    async def _create_custom(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(t.name, self.partitions[t.name], 1, topic_configs=t.configs)
                    for t in TOPICS
                    if t.name in self.partitions
                ]
            )
        finally:
            await admin.close()


def _in_new_loop(coroutine: Awaitable[Any]) -> Any:
    """Run a coroutine on a fresh loop in a worker thread (safe from inside a running loop)."""
    from concurrent.futures import ThreadPoolExecutor

    async def run() -> Any:
        return await coroutine

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


# -- processes --------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (no orphans after a crash)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Replica:
    """One service process; ``keep_down`` tells the supervisor to leave it stopped."""

    service: str
    index: int
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)
    keep_down: bool = False

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        assert not self.alive(), f"{self.name} is already running"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ketnap", self.service],
                env={**self.env, **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.starts += 1

    def reap(self) -> int | None:
        """Record the exit code of a process that ended (once)."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        self.exits.append(code)
        self.process = None
        return code

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, sig)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or container dies."""
        if self.process is None:
            return
        self.send(signal.SIGKILL)  # also ends a frozen (SIGSTOPped) process, without letting it run first
        await asyncio.to_thread(self.process.wait)
        self.reap()

    async def stop(self, grace: float = 30.0) -> None:
        """SIGTERM and wait (the service drains its batch in flight); SIGKILL after ``grace``."""
        if self.process is None:
            return
        self.send(signal.SIGCONT)
        self.send(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, grace)
        except subprocess.TimeoutExpired:
            await self.kill()
        self.reap()


# -- metrics ----------------------------------------------------------------------------------


@dataclass
class Scrape:
    """What one scrape of one process said."""

    lag: float = 0.0
    freshness: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # service -> (le, cum)
    redeliveries: float = 0.0
    backlog: float = 0.0


def parse_metrics(body: str) -> Scrape:
    scrape = Scrape()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "ketnap_consumer_lag":
                scrape.lag += sample.value
            elif sample.name == "ketnap_freshness_seconds_bucket":
                le = float(sample.labels["le"])
                scrape.freshness.setdefault(sample.labels.get("service", ""), []).append((le, sample.value))
            elif sample.name == "ketnap_redeliveries_total":
                scrape.redeliveries += sample.value
            elif sample.name == "ketnap_outbox_backlog":
                scrape.backlog += sample.value
    return scrape


def p99(buckets: Iterable[tuple[float, float]]) -> float | None:
    """The upper bound of the bucket holding the 99th percentile of a cumulative histogram."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] == 0:
        return None
    total = ordered[-1][1]
    return next(le for le, cum in ordered if cum >= 0.99 * total)


def merge_buckets(parts: Iterable[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    merged: defaultdict[float, float] = defaultdict(float)
    for part in parts:
        for le, cum in part:
            merged[le] += cum
    return sorted(merged.items())


# -- the cluster ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """The cumulative figures of a cluster when a scenario began."""

    freshness: dict[str, list[tuple[float, float]]]
    redeliveries: dict[str, int]


@dataclass
class ClusterSpec:
    tokens: dict[str, list[str]]
    replicas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICES, 1))
    env: dict[str, str] = field(default_factory=dict)  # for every service
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    read_auth: bool = False


class Cluster:
    """A private broker and the three services as processes on fresh databases."""

    def __init__(self, workdir: Path, spec: ClusterSpec, database_urls: Mapping[str, str]) -> None:
        self.workdir, self.spec, self.database_urls = workdir, spec, dict(database_urls)
        workdir.mkdir(parents=True, exist_ok=True)
        self.broker = ScenarioBroker(workdir / "broker.log", spec.partitions)
        self.replicas: list[Replica] = []
        self.scrapes: dict[tuple[str, int], Scrape] = {}  # (replica name, pid) -> last scrape
        self.max_lag: dict[str, float] = defaultdict(float)
        self.restarts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._engines: dict[str, AsyncEngine] = {}
        self._offsets: AIOKafkaConsumer | None = None
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0))

    # lifecycle

    def env(self, service: str, port: int) -> dict[str, str]:
        return {
            **os.environ,
            "KETNAP_ENV": "dev",
            "KETNAP_SERVICE": service,
            "KETNAP_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "KETNAP_DATABASE_URL": self.database_urls[service],
            "KETNAP_HTTP_PORT": str(port),
            "KETNAP_TOKENS": json.dumps(self.spec.tokens),
            "KETNAP_READ_AUTH": "true" if self.spec.read_auth else "false",
            "KETNAP_KAFKA_SESSION_TIMEOUT_MS": SESSION_TIMEOUT_MS,
            "KETNAP_SHUTDOWN_GRACE_S": "10",
            "KETNAP_LOG_LEVEL": "INFO",
            **self.spec.env,
            **self.spec.service_env.get(service, {}),
        }

    async def start(self) -> None:
        await asyncio.to_thread(self.broker.start)
        for service in SERVICES:
            for index in range(self.spec.replicas.get(service, 1)):
                port = free_port()
                log = self.workdir / f"{service}-{index}.log"
                replica = Replica(service, index, port, self.env(service, port), log)
                self.replicas.append(replica)
        firsts = [self.of(s)[0] for s in SERVICES]  # services in parallel; a service's replicas after
        for replica in firsts:  # its first one has migrated their shared database
            replica.start()
        await self.wait_ready(firsts)
        others = [r for r in self.replicas if r not in firsts]
        for replica in others:
            replica.start()
        await self.wait_ready(others)
        self._offsets = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap, fetch_max_wait_ms=10)
        await self._offsets.start()
        self._tasks = [asyncio.create_task(self._supervise()), asyncio.create_task(self._sample())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(r.stop(15) for r in self.replicas))
        if self._offsets is not None:
            await self._offsets.stop()
        for engine in self._engines.values():
            await engine.dispose()
        await self.http.aclose()
        await asyncio.to_thread(self.broker.stop)

    def of(self, service: str) -> list[Replica]:
        return [r for r in self.replicas if r.service == service]

    def url(self, service: str) -> str:
        """A live replica's URL (the first one; any answers the same)."""
        live = [r for r in self.of(service) if r.alive()] or self.of(service)
        return live[0].url

    async def ready(self, replica: Replica) -> bool:
        try:
            answer = await self.http.get(f"{replica.url}/readyz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    async def wait_ready(self, replicas: Sequence[Replica], within: float = READY_TIMEOUT_S) -> float:
        """Seconds until every replica answers ``/readyz`` 200; RuntimeError (with its log) if not."""
        started = time.monotonic()
        pending = list(replicas)
        while pending:
            if time.monotonic() - started > within:
                tails = {r.name: _tail(r.log) for r in pending}
                raise RuntimeError(f"not ready within {within}s: {tails}")
            pending = [r for r in pending if not await self.ready(r)]
            if pending:
                await asyncio.sleep(0.2)
        return time.monotonic() - started

    async def back(self, replica: Replica, within: float = 180.0) -> None:
        """Wait until the supervisor has restarted ``replica`` and it is ready."""
        while True:
            if replica.alive():
                await self.wait_ready([replica], within)
                return
            await asyncio.sleep(0.1)

    async def restart(self, replica: Replica, extra_env: Mapping[str, str] | None = None) -> None:
        """Stop (gracefully) and start again, with ``extra_env`` for this start only; wait until ready."""
        replica.keep_down = True  # the supervisor must not restart it in between
        if replica.alive():
            await replica.stop()
        replica.reap()
        replica.start(extra_env)
        replica.keep_down = False
        await self.wait_ready([replica])

    async def _supervise(self) -> None:
        """Restart what died (a crash, the fault hook's exit), as an orchestrator would."""
        while True:
            for replica in self.replicas:
                if replica.process is not None and not replica.alive():
                    replica.reap()
                if replica.process is None and not replica.keep_down:
                    self.restarts += 1
                    replica.start()
            await asyncio.sleep(0.2)

    async def _sample(self) -> None:
        while True:
            lags: defaultdict[str, float] = defaultdict(float)
            for replica in list(self.replicas):
                pid = replica.pid
                if pid is None or not replica.alive():
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    answer = await self.http.get(f"{replica.url}/metrics", timeout=1.0)
                    if answer.status_code == 200:
                        scrape = parse_metrics(answer.text)
                        self.scrapes[(replica.name, pid)] = scrape
                        lags[replica.service] += scrape.lag
            for service, lag in lags.items():
                self.max_lag[service] = max(self.max_lag[service], lag)
            await asyncio.sleep(0.5)

    # figures from the sampler

    def mark(self) -> Mark:
        """Start a scenario's figures here (on a cluster shared by several scenarios)."""
        self.max_lag.clear()
        return Mark(
            {s: self.freshness_buckets(s) for s in CONSUMES},
            {s: self.redeliveries(s) for s in CONSUMES},
        )

    def freshness_buckets(self, service: str) -> list[tuple[float, float]]:
        return merge_buckets(s.freshness.get(service, []) for s in self.scrapes.values())

    def p99_freshness(self, service: str, since: Mark | None = None) -> float | None:
        buckets = self.freshness_buckets(service)
        if since is not None:
            before = dict(since.freshness.get(service, []))
            buckets = [(le, cum - before.get(le, 0.0)) for le, cum in buckets]
        return p99(buckets)

    def redeliveries_logged(self, service: str) -> int:
        """Redelivered records the service's replicas dropped, from their logs (which outlive a kill,
        unlike a counter the sampler may not have scraped before the process died again)."""
        return sum(
            int(line.get("count", 0))
            for replica in self.of(service)
            for _, line in log_times(replica.log, "redelivered records skipped")
        )

    def redeliveries(self, service: str, since: Mark | None = None) -> int:
        total = int(sum(s.redeliveries for (name, _), s in self.scrapes.items() if name.startswith(service)))
        return total - (since.redeliveries.get(service, 0) if since else 0)

    def exits(self, service: str) -> list[int]:
        return [code for r in self.of(service) for code in r.exits]

    # quiescence, from the services' own databases

    def engine(self, service: str) -> AsyncEngine:
        if service not in self._engines:
            self._engines[service] = create_async_engine(self.database_urls[service], poolclass=NullPool)
        return self._engines[service]

    async def end_offsets(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        assert self._offsets is not None
        partitions = [
            TopicPartition(t, p) for t in set(topics) for p in sorted(await _partitions(self._offsets, t))
        ]
        ends = await high_watermarks(self._offsets, partitions)
        return {(tp.topic, tp.partition): n for tp, n in ends.items()}

    async def positions(self, service: str) -> tuple[dict[str, dict[tuple[str, int], int]], int] | None:
        """Stored positions per consumer group, and the outbox rows; None if the database says nothing."""
        try:
            async with self.engine(service).connect() as connection:
                rows = (
                    await connection.execute(
                        text(
                            f"SELECT group_id, topic, partition, next_offset FROM {service}_consumer_offsets"
                        )
                    )
                ).all()
                outbox = int(await connection.scalar(text(f"SELECT count(*) FROM {service}_outbox")) or 0)
        except Exception:  # not migrated yet, database down
            return None
        groups: dict[str, dict[tuple[str, int], int]] = defaultdict(dict)
        for group, topic, partition, position in rows:
            groups[group][(topic, int(partition))] = int(position)
        return dict(groups), outbox

    async def behind(self, service: str, ends: Mapping[tuple[str, int], int] | None = None) -> int:
        """Records up to ``ends`` (default: now) not yet in the service's database, plus its outbox rows."""
        ends = ends if ends is not None else await self.end_offsets(CONSUMES[service])
        stored = await self.positions(service)
        if stored is None:
            return sum(ends.values()) + 1
        groups, outbox = stored
        missing = 0
        for topic in CONSUMES[service]:
            owners = [g for g in groups.values() if any(t == topic for t, _ in g)]
            for (t, p), end in ends.items():
                if t != topic or end == 0:
                    continue
                if not owners:
                    missing += end
                for positions in owners:
                    missing += max(0, end - positions.get((t, p), 0))
        return missing + outbox

    async def settle(self, within: float = 300.0) -> float:
        """Seconds until quota and reporting are caught up with every topic and their outboxes are empty."""
        started = time.monotonic()
        quiet = 0
        while quiet < 2:
            if time.monotonic() - started > within:
                state = {s: await self.behind(s) for s in CONSUMES}
                raise TimeoutError(f"not quiet within {within}s: {state}")
            behind = [await self.behind(s) for s in CONSUMES]
            quiet = quiet + 1 if not any(behind) else 0
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    # reading the services

    async def get(
        self, service: str, path: str, token: str | None = NATIONAL_TOKEN, **params: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for attempt in range(30):
            try:
                return await self.http.get(f"{self.url(service)}{path}", params=params, headers=headers)
            except httpx.TransportError:
                await asyncio.sleep(min(1.0, 0.1 * (attempt + 1)))
        raise RuntimeError(f"{service}{path}: no answer")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def high_watermarks(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Each partition's end (the next offset to be written), from a fetch response.

    Not ``end_offsets``: Tansu answers ListOffsets(latest) with the base offset of the
    last record batch plus one, which is short of the end whenever that batch holds
    more than one record. A fetch response carries the true high watermark.
    """
    listed = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, max(0, listed[tp] - 1))
    found: dict[TopicPartition, int] = {}
    for _ in range(100):
        missing = [tp for tp in partitions if tp not in found]
        if not missing:
            return found
        await consumer.getmany(*missing, timeout_ms=200, max_records=1)
        for tp in missing:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                found[tp] = int(highwater)
    raise RuntimeError(f"no high watermark for {sorted(set(partitions) - set(found))}")


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        cluster = await consumer._client.fetch_all_metadata()  # the whole topic list, not just assigned ones
        found = cluster.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no partitions for {topic}")


# -- the client -------------------------------------------------------------------------------

RETRIABLE = frozenset({502, 503, 504})


@dataclass
class Ledger:
    """Every id's answer from the intake, every request's status and timing."""

    status: dict[str, str] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    http: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    retries: int = 0
    requests: list[tuple[float, float, int]] = field(default_factory=list)  # monotonic start, end, status

    def note(self, results: Sequence[Mapping[str, Any]]) -> None:
        for r in results:
            event_id, status = str(r["id"]), str(r["status"])
            if self.status.get(event_id) in ("accepted", "duplicate") and status == "rejected":
                self.status[event_id] = "rejected"  # would be an id_conflict: keep it visible
            elif event_id not in self.status or status != "duplicate" or self.status[event_id] == "rejected":
                self.status[event_id] = status
            if status == "rejected":
                self.codes[event_id] = str(r["error"]["code"])

    @property
    def accepted(self) -> set[str]:
        """Ids the intake took (a ``duplicate`` here is always of an earlier answer of ours)."""
        return {i for i, s in self.status.items() if s in ("accepted", "duplicate")}

    @property
    def rejected(self) -> set[str]:
        return {i for i, s in self.status.items() if s == "rejected"}


class UnexpectedAnswer(Exception):
    pass


class Client:
    """A provincial deployment's sender: JSON batches, retried on 503 and connection errors."""

    def __init__(self, cluster: Cluster, *, patience: float = 300.0, max_backoff: float = 1.0) -> None:
        self.cluster, self.patience, self.max_backoff = cluster, patience, max_backoff
        self.ledger = Ledger()
        self.sent: dict[str, Event] = {}

    async def post(self, events: Sequence[Event], token: str = NATIONAL_TOKEN) -> dict[str, Any]:
        for e in events:
            self.sent.setdefault(str(e["id"]), e)
        body = orjson.dumps(list(events))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        deadline = time.monotonic() + self.patience
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                answer = await self.cluster.http.post(
                    f"{self.cluster.url('intake')}/v1/events", content=body, headers=headers
                )
            except httpx.TransportError:
                self.ledger.transport_errors += 1
            else:
                self.ledger.requests.append((started, time.monotonic(), answer.status_code))
                self.ledger.http[answer.status_code] += 1
                if answer.status_code in (200, 202):
                    doc: dict[str, Any] = answer.json()
                    self.ledger.note(doc["results"])
                    return doc
                if answer.status_code not in RETRIABLE:
                    raise UnexpectedAnswer(f"{answer.status_code}: {answer.text[:500]}")
            if time.monotonic() > deadline:
                raise UnexpectedAnswer(f"no answer but retry within {self.patience}s")
            self.ledger.retries += 1
            await asyncio.sleep(min(self.max_backoff, 0.1 * attempt))

    async def post_stream(
        self, events: Sequence[Event], token: str = NATIONAL_TOKEN, batch: int = 500, pace: float = 0.0
    ) -> None:
        """Batches in order; ``pace`` seconds between them spreads a run over the faults it must meet."""
        for start in range(0, len(events), batch):
            await self.post(events[start : start + batch], token)
            if pace:
                await asyncio.sleep(pace)

    async def send_world(
        self, world: World, stories: Sequence[list[Event]], *, batch: int = 500, pace: float = 0.0
    ) -> None:
        """Registrations and targets (national token), then each province's events with its own token."""
        await self.post(world.registrations() + world.targets())
        streams = by_province(world, stories)
        await asyncio.gather(
            *(self.post_stream(events, province_token(p), batch, pace) for p, events in streams.items())
        )

    def accepted_events(self) -> list[Event]:
        return [self.sent[i] for i in self.ledger.accepted if i in self.sent]


# -- verification -----------------------------------------------------------------------------

ROLLUP_METRICS = ("sourced", "admitted", "confirmed", "dropped", "transferred_in")


@dataclass
class Verdict:
    """Observed against the model: tallies (quota), rollups (reporting), invariants."""

    tallies: Discrepancy
    rollups: Discrepancy
    invariant_breaks: list[Any]
    dead_lettered: int
    counted_events: int

    @property
    def lost(self) -> int:
        return max(self.tallies.lost, self.rollups.lost)

    @property
    def double_counted(self) -> int:
        return max(self.tallies.double_counted, self.rollups.double_counted)

    @property
    def ok(self) -> bool:
        return self.tallies.ok and self.rollups.ok and not self.invariant_breaks

    def explain(self) -> str:
        return (
            f"tallies: lost {self.tallies.lost}, double {self.tallies.double_counted}, "
            f"wrong keys {self.tallies.wrong_keys[:8]}; rollups: lost {self.rollups.lost}, "
            f"double {self.rollups.double_counted}, wrong {self.rollups.wrong_keys[:8]}; "
            f"invariant breaks {self.invariant_breaks[:8]}"
        )


async def gather_limited(calls: Iterable[Callable[[], Awaitable[T]]], limit: int = 8) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


async def branch_tallies(cluster: Cluster, branches: Iterable[str], years: Sequence[int]) -> Counter[YearKey]:
    """Every branch's tallies per year from the quota API (404: nothing counted there)."""

    async def one(branch: str, year: int) -> list[tuple[YearKey, int]]:
        answer = await cluster.get("quota", f"/v1/branches/{branch}/tallies", year=year)
        if answer.status_code == 404:
            return []
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        return [
            ((branch, year, metric, category), int(n))
            for metric, per in doc["tallies"].items()
            for category, n in per.items()
            if n
        ]

    found: Counter[YearKey] = Counter()
    calls = [lambda b=b, y=y: one(b, y) for b in branches for y in years]
    for pairs in await gather_limited(calls):
        found.update(dict(pairs))
    return found


async def rollup(
    cluster: Cluster, unit: str, period: str, tree: str, metric: str = "admitted", category: str = "all"
) -> dict[str, Any]:
    answer = await cluster.get(
        "reporting", f"/v1/rollups/{unit}", period=period, tree=tree, metric=metric, category=category
    )
    assert answer.status_code == 200, (
        f"rollup {unit} {period} {tree}: {answer.status_code} {answer.text[:300]}"
    )
    doc: dict[str, Any] = answer.json()
    return doc


async def check_rollups(
    cluster: Cluster,
    world: World,
    year_tallies: Mapping[YearKey, int],
    years: Sequence[int],
    *,
    thorough: bool,
) -> tuple[Discrepancy, list[Any]]:
    """Provinces (both trees) and communes: value == model == Σ children + unmapped (``thorough``: more)."""
    totals = unit_totals(world, year_tallies)
    queries: list[tuple[str, str, int, str, str]] = []
    provinces_2025 = sorted({b.province_2025 for b in world.branches})
    for year in years:
        for metric in ROLLUP_METRICS if thorough else ROLLUP_METRICS[:3]:
            for category in ("all", "female") if thorough else ("all",):
                queries += [("legacy", p, year, metric, category) for p in world.provinces]
                queries += [("2025", p, year, metric, category) for p in provinces_2025]
        metrics = ("sourced", "admitted") if thorough else ("admitted",)
        queries += [("legacy", c, year, m, "all") for c in world.communes for m in metrics]
    wrong, breaks = Discrepancy(), []

    async def one(q: tuple[str, str, int, str, str]) -> None:
        tree, unit, year, metric, category = q
        doc = await rollup(cluster, unit, str(year), tree, metric, category)
        value, kids = int(doc["value"]), doc.get("children", [])
        if value != sum(int(k["value"]) for k in kids) + int(doc.get("unmapped", 0)):
            breaks.append((q, value, [(k["id"], k["value"]) for k in kids], doc.get("unmapped")))
        wrong.add(q, totals.get(tree, unit, year, metric, category), value, counts_events=category == "all")
        for kid in kids:
            expected = totals.get(tree, kid["id"], year, metric, category)
            wrong.add((*q, kid["id"]), expected, int(kid["value"]), counts_events=False)

    await gather_limited([partial(one, q) for q in queries])
    # Each province query counts every event once; report the worst province, not the sum of levels.
    return wrong, breaks


async def verify(
    cluster: Cluster,
    world: World,
    accepted: Iterable[Event],
    *,
    scope: Collection[str] | None = None,
    years: Sequence[int] = (2023, 2024, 2025),
    thorough: bool = FULL,
) -> Verdict:
    """Wait for quiet, then compare every branch tally and the rollups with the model.

    ``scope``: the ids this scenario sent, when it shares the cluster (rejections of
    other ids are not its dead letters).
    """
    await cluster.settle()
    expected = Counter({k: n for k, n in by_year(expected_tallies(accepted)).items() if k[1] in years})
    observed = await branch_tallies(cluster, [b.id for b in world.branches], years)
    tallies = compare_year_tallies(expected, observed)
    rollups, breaks = await check_rollups(cluster, world, expected, years, thorough=thorough)
    rollups = Discrepancy(
        lost=_worst_province(rollups, "lost"),
        double_counted=_worst_province(rollups, "double"),
        wrong_keys=rollups.wrong_keys,
    )
    rejected = await read_topic(cluster.broker.bootstrap, REJECTED)
    dead = sum(1 for r in rejected if scope is None or (r.key or b"").decode() in scope)
    counted = sum(n for k, n in expected.items() if k[3] == "all")
    return Verdict(tallies, rollups, breaks, dead, counted)


def _worst_province(found: Discrepancy, which: str) -> int:
    """Events missing (or extra) at the level of one tree's provinces, summed over years and metrics."""
    total = 0
    for key, expected, observed in found.wrong_keys:
        if len(key) != 5 or key[4] != "all" or key[0] != "legacy":
            continue
        total += max(0, expected - observed) if which == "lost" else max(0, observed - expected)
    return total


# -- topics -----------------------------------------------------------------------------------


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        ends = await high_watermarks(consumer, partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=2000, max_records=20_000)
            for tp, part in batch.items():
                records.extend(r for r in part if r.offset < ends[tp])
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()


Raw = tuple[bytes | None, bytes, list[tuple[str, bytes]]]  # key, value, headers


async def publish_raw(bootstrap: str, topic: str, messages: Sequence[Raw]) -> None:
    """Put records straight on a topic (poison, duplicates), acks=all."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=h) for key, value, h in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def version_breaks(records: Iterable[Any], key_of: Callable[[dict[str, Any]], Any]) -> list[Any]:
    """Keys whose ``version`` went down (in offset order), or repeated with another value."""
    last: dict[Any, tuple[int, Any]] = {}
    breaks = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        doc = orjson.loads(record.value)
        key, version = key_of(doc), int(doc["version"])
        body = {k: v for k, v in doc.items() if k not in ("as_of",)}
        if key in last:
            seen_version, seen_body = last[key]
            if version < seen_version or (version == seen_version and body != seen_body):
                breaks.append((key, seen_version, version))
        if key not in last or version >= last[key][0]:
            last[key] = (version, body)
    return breaks


def tally_version_breaks(records: Iterable[Any]) -> list[Any]:
    """Per (branch, date, metric, category) on ``ketnap.tally-changes``: versions never go down."""
    return version_breaks(records, lambda d: (d["branch_id"], d["date"], d["metric"], d["category"]))


def wire_differences(expected: Mapping[TallyKey, int], records: Iterable[Any]) -> list[Any]:
    """Tally keys whose latest value on ``ketnap.tally-changes`` is not the model's (per local day)."""
    latest: dict[TallyKey, tuple[int, int]] = {}
    for record in records:
        d = orjson.loads(record.value)
        key = (d["branch_id"], date.fromisoformat(d["date"]), d["metric"], d["category"])
        if key not in latest or d["version"] > latest[key][0]:
            latest[key] = (int(d["version"]), int(d["value"]))
    wire = {k: v for k, (_, v) in latest.items() if v}
    return [
        (k, expected.get(k, 0), wire.get(k, 0))
        for k in set(expected) | set(wire)
        if expected.get(k, 0) != wire.get(k, 0)
    ]


async def topic_ids(bootstrap: str, topic: str) -> Counter[str]:
    """How many times each CloudEvent id is on ``topic``."""
    return Counter(str(orjson.loads(r.value)["id"]) for r in await read_topic(bootstrap, topic))


# -- figures ----------------------------------------------------------------------------------


@dataclass
class Figures:
    """The one line a scenario reports."""

    scenario: str
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    faults: int = 0
    lost: int | None = None
    double_counted: int | None = None
    dead_lettered: int | None = None
    max_lag: int | None = None
    p99_freshness_s: float | None = None
    seconds: float = 0.0
    passed: bool = False
    notes: str = ""

    def fill(self, cluster: Cluster, verdict: Verdict | None = None, since: Mark | None = None) -> Figures:
        self.max_lag = int(max(cluster.max_lag.values(), default=0))
        found = (cluster.p99_freshness("quota", since), cluster.p99_freshness("reporting", since))
        values = [v for v in found if v]
        self.p99_freshness_s = max(values) if values else None
        if verdict is not None:
            self.lost, self.double_counted = verdict.lost, verdict.double_counted
            self.dead_lettered = verdict.dead_lettered
        return self


# -- a PostgreSQL cluster of the scenario's own ------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (trust auth, no fsync) that a scenario may stop and start.

    Run as the ``postgres`` user (``runuser``) in a directory of its own under /tmp, on a
    free port: the shared server of the test suite is never touched.
    """

    def __init__(self) -> None:
        import uuid

        self.root = Path(f"/tmp/rel-pg-{uuid.uuid4().hex[:12]}")
        self.port = free_port()
        self.stops = 0

    @staticmethod
    def unavailable() -> str | None:
        """Why this machine cannot run one (None: it can)."""
        import pwd

        if os.geteuid() != 0:
            return "needs root to run PostgreSQL as the postgres user"
        if not (PG_BIN / "initdb").exists():
            return f"no {PG_BIN / 'initdb'}"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres user"
        return None

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120
        )

    def init(self) -> None:
        self.root.mkdir(mode=0o700)
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres", "-N"
        )
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w", "stop")
        self.stops += 1

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str) -> str:
        engine = create_async_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets a consumer group committed to the broker, per partition (without joining it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = sorted(await _partitions(consumer, topic))
        return {p: int(await consumer.committed(TopicPartition(topic, p)) or 0) for p in partitions}
    finally:
        await consumer.stop()


def log_times(path: Path, event: str) -> list[tuple[float, dict[str, Any]]]:
    """(epoch seconds, line) of every JSON log line of ``path`` whose ``event`` is ``event``."""
    from datetime import datetime

    found = []
    for line in path.read_text(errors="replace").splitlines():
        if event not in line:
            continue
        with contextlib.suppress(ValueError):
            doc = orjson.loads(line)
            if doc.get("event") == event:
                found.append((datetime.fromisoformat(doc["timestamp"]).timestamp(), doc))
    return found
