"""The intake served over real HTTP (uvicorn on a free port), on the real broker and a real database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.intake.app import create_app
from shared.embedded_broker import free_port
from shared.settings import Settings
from shared.topics import partitions_of

NATIONAL = "national-token-0123456789abcdef"
QUANG_NINH = "quang-ninh-token-0123456789abcdef"  # P22 in both trees
LAO_CAI_LEGACY = "lao-cai-token-0123456789abcdef"  # legacy P10 only
LAO_CAI_2025 = "lao-cai-2025-token-0123456789abcdef"  # 2025 P15 (legacy P10 + P15 merged)
TOKENS = {
    NATIONAL: ["*"],
    QUANG_NINH: ["P22"],
    LAO_CAI_LEGACY: ["legacy:P10"],
    LAO_CAI_2025: ["2025:P15"],
}


class _QuietServer(uvicorn.Server):
    """uvicorn inside the test loop: no signal handlers (pytest owns them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Served:
    server: _QuietServer
    task: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = NATIONAL, **headers: str) -> httpx.AsyncClient:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers={**auth, **headers}, timeout=60)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve(settings: Settings, **app_options: Any) -> Served:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings.model_copy(update={"http_port": port}), **app_options),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
    return Served(server, task, port)


class ThreadedServer:
    """The intake under uvicorn in its own thread and event loop, for synchronous clients."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings.model_copy(update={"http_port": self.port})),
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)  # not the main thread: uvicorn installs no signal handlers
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the intake did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def intake_settings(
    bootstrap: str, database_url: str, tokens: dict[str, list[str]] | None = None
) -> Settings:
    return Settings(
        service="intake",
        kafka_bootstrap=bootstrap,
        database_url=database_url,
        tokens=json.dumps(tokens or TOKENS),
        log_level="WARNING",
    )


StartIntake = Callable[..., Awaitable[Served]]


@pytest.fixture
async def start_intake(kafka_bootstrap: str, database_url: str) -> AsyncIterator[StartIntake]:
    """Start an intake (default: session broker, this test's database); all stopped at the end."""
    running: list[Served] = []

    async def start(
        *,
        bootstrap: str | None = None,
        url: str | None = None,
        log_level: str = "WARNING",
        **app_options: Any,
    ) -> Served:
        settings = intake_settings(bootstrap or kafka_bootstrap, url or database_url)
        served = await serve(settings.model_copy(update={"log_level": log_level}), **app_options)
        running.append(served)
        return served

    yield start
    for served in running:
        if not served.task.done():
            await served.stop()


@pytest.fixture
async def intake(start_intake: StartIntake) -> Served:
    return await start_intake()


# -- events -----------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def event(
    event_type: str, data: dict[str, Any], *, subject: str | None = None, **over: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": new_id(),
        "source": "/deployments/test",
        "type": f"vn.ketnap.{event_type}",
        "time": "2024-05-12T09:00:00+07:00",
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        doc["subject"] = subject
    return {**doc, **over}


def branch(
    branch_id: str | None = None, legacy: str | None = "C06901", v2025: str | None = "C06913", **over: Any
) -> dict[str, Any]:
    parents = {k: v for k, v in (("legacy", legacy), ("2025", v2025)) if v is not None}
    data = {
        "branch_id": branch_id or f"B-{uuid.uuid4().hex[:10]}",
        "name": "Chi bộ thôn 3",
        "kind": "residential",
    }
    return event(
        "org.branch_registered", {**data, "parents": parents}, **{"time": "2024-01-02T08:00:00+07:00", **over}
    )


def candidate(kind: str, branch_id: str, subject: str | None = None, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"branch_id": branch_id}
    if kind == "sourced":
        data["profile"] = {"birth_year": 1999, "sex": "female", "categories": ["youth_union"]}
    return event(f"candidate.{kind}", data, subject=subject or f"cand-{uuid.uuid4().hex[:12]}", **over)


def ndjson(events: list[Any]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


async def post(client: httpx.AsyncClient, events: Any, **params: Any) -> httpx.Response:
    return await client.post(
        "/v1/events",
        content=orjson.dumps(events),
        params=params,
        headers={"Content-Type": "application/json"},
    )


# -- reading topics back -------------------------------------------------------------------


async def read_topic(
    bootstrap: str, topic: str, ids: set[str], *, settle_s: float = 1.0
) -> list[ConsumerRecord]:
    """Every record of ``topic`` whose value's id is in ``ids``, from the beginning of each partition.

    Reads at least up to the end offsets seen at the start (nothing published before
    the call is missed), then keeps polling ``settle_s`` longer for late arrivals.
    """
    count = partitions_of(topic)
    partitions = [TopicPartition(topic, p) for p in range(count)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[ConsumerRecord] = []
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while deadline is None or loop.time() < deadline:
            batch = await consumer.getmany(*partitions, timeout_ms=200)
            for records in batch.values():
                found += [r for r in records if orjson.loads(r.value).get("id") in ids]
            if deadline is None and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                deadline = loop.time() + settle_s
        return found
    finally:
        await consumer.stop()
