"""The quota service in-process against a private Tansu broker and a fresh database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI

from services.quota.app import create_app
from shared.consumer import SESSION_TIMEOUT_ENV
from shared.embedded_broker import EmbeddedBroker
from shared.settings import Settings
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS
from tests.conftest import fresh_database_url
from tests.integration.quota.feed import encode


@pytest.fixture(autouse=True)
def _short_group_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tansu completes a rejoin only after about a session timeout: keep it short here."""
    monkeypatch.setenv(SESSION_TIMEOUT_ENV, "1500")


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    """A broker of its own: other suites' events on the shared one are not this service's input."""
    with EmbeddedBroker() as running:
        yield running


async def publish(bootstrap: str, events: list[dict[str, Any]], topic: str = CANDIDATE_EVENTS) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for event in events:
            key, value = encode(event)
            headers = [("content-type", b"application/cloudevents+json")]
            futures.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, *, idle_ms: int = 1500) -> list[Any]:
    """Every record of a topic, from the start, until ``idle_ms`` without a new one."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        while batch := await consumer.getmany(timeout_ms=idle_ms, max_records=10_000):
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


@dataclass
class Quota:
    app: FastAPI
    client: httpx.AsyncClient
    bootstrap: str
    database_url: str

    async def send(self, events: list[dict[str, Any]], topic: str = CANDIDATE_EVENTS) -> None:
        await publish(self.bootstrap, events, topic)

    async def reference(self, events: list[dict[str, Any]]) -> None:
        await publish(self.bootstrap, events, REFERENCE_EVENTS)

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        response = await self.client.get(path, params=params)
        return response.status_code, orjson.loads(response.content) if response.content else None


@asynccontextmanager
async def running_quota(bootstrap: str, database_url: str, **overrides: Any) -> AsyncIterator[Quota]:
    settings = Settings(
        service="quota", kafka_bootstrap=bootstrap, database_url=database_url, shutdown_grace_s=5, **overrides
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://quota") as client:
            yield Quota(app, client, bootstrap, database_url)


@pytest.fixture
async def quota(broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[Quota]:
    async with running_quota(broker.bootstrap, await fresh_database_url(tmp_path)) as running:
        yield running
