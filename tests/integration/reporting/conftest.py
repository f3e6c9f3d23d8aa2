"""The reporting service in-process against a private Tansu broker and a fresh database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.reporting.app import create_app
from shared.consumer import SESSION_TIMEOUT_ENV
from shared.embedded_broker import EmbeddedBroker
from shared.settings import Settings
from shared.topics import REFERENCE_EVENTS, TALLY_CHANGES
from tests.conftest import eventually
from tests.integration.reporting.feed import Tally, encode_change, encode_event


@pytest.fixture(autouse=True)
def _short_group_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tansu completes a rejoin only after about a session timeout: keep it short here."""
    monkeypatch.setenv(SESSION_TIMEOUT_ENV, "1500")


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    """A broker of its own per module: another suite's tallies are not this service's input."""
    with EmbeddedBroker() as running:
        yield running


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass
class Reporting:
    app: FastAPI
    client: httpx.AsyncClient
    bootstrap: str
    database_url: str

    async def tallies(self, changes: list[Tally]) -> None:
        await produce(self.bootstrap, TALLY_CHANGES, [encode_change(c) for c in changes])

    async def reference(self, events: list[dict[str, Any]]) -> None:
        await produce(self.bootstrap, REFERENCE_EVENTS, [encode_event(e) for e in events])

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        response = await self.client.get(path, params=params)
        body = orjson.loads(response.content) if response.content else None
        return response.status_code, body

    async def rollup(self, unit_id: str, **params: Any) -> dict[str, Any]:
        status, body = await self.get(f"/v1/rollups/{unit_id}", **params)
        assert status == 200, body
        return dict(body)

    async def value_becomes(self, unit_id: str, expected: int, **params: Any) -> dict[str, Any]:
        """Wait until the unit's value is `expected` (the fold is asynchronous); the answer."""

        async def probe() -> dict[str, Any] | None:
            body = await self.rollup(unit_id, **params)
            return body if body["value"] == expected else None

        return await eventually(probe)


@asynccontextmanager
async def running_reporting(
    bootstrap: str, database_url: str, *, clock: Callable[[], datetime] | None = None, **overrides: Any
) -> AsyncIterator[Reporting]:
    settings = Settings(
        service="reporting",
        kafka_bootstrap=bootstrap,
        database_url=database_url,
        shutdown_grace_s=5,
        rollup_coalesce_s=overrides.pop("rollup_coalesce_s", 0.2),
        **overrides,
    )
    app = create_app(settings) if clock is None else create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
            yield Reporting(app, client, bootstrap, database_url)
